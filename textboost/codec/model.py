"""The TextBoost backbone network (ELIC, He et al. CVPR 2022) with continuous variable rate.

``forward`` is for training (likelihoods, noisy rate); bytes are written by
:class:`textboost.codec.api.Codec` from the frozen integer tables of this network.

Variable rate: one set of weights, a continuous rate parameter r ∈ [0, 1]. The
quantisation step of each latent channel is 2^(−L_c(r)), with L_c interpolated linearly
(in log2) between K learned gain vectors; λ of the loss is interpolated geometrically.
In the coder, r is a uint16 in the header and the interpolation is integer-exact.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from textboost.blocks import AttentionBlock, ResidualBottleneck
from textboost.codec.config import CodecConfig
from textboost.codec.entropy_models import SCCTX, FactorizedPrior
from textboost.codec.exact import LATENT_FRAC
from textboost.codec.layers import QConv2d, conv, deconv, ste_round

__all__ = ["CodecConfig", "TextBoostNet"]


def _stage(n: int, blocks: int) -> list[nn.Module]:
    return [ResidualBottleneck(n) for _ in range(blocks)]


class TextBoostNet(nn.Module):
    def __init__(self, cfg: CodecConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or CodecConfig()
        self.cfg = cfg
        n, m, b = cfg.N, cfg.M, cfg.res_blocks
        attn = (lambda: [AttentionBlock(n)]) if cfg.attention else list
        attn_m = (lambda: [AttentionBlock(m)]) if cfg.attention else list
        self.g_a = nn.Sequential(
            conv(3, n), *_stage(n, b),
            conv(n, n), *_stage(n, b), *attn(),
            conv(n, n), *_stage(n, b),
            conv(n, m), *attn_m(),
        )  # fmt: skip
        self.g_s = nn.Sequential(
            *attn_m(), deconv(m, n), *_stage(n, b),
            deconv(n, n), *attn(), *_stage(n, b),
            deconv(n, n), *_stage(n, b),
            deconv(n, 3),
        )  # fmt: skip
        self.h_a = nn.Sequential(
            nn.Conv2d(m, n, 3, padding=1),
            nn.ReLU(inplace=True),
            conv(n, n),
            nn.ReLU(inplace=True),
            conv(n, cfg.z_channels),
        )
        self.z_prior = FactorizedPrior(cfg.z_channels)
        self.scctx = SCCTX(
            cfg.z_channels, cfg.groups, cfg.hs_channels, cfg.hs_mid_channels,
            cfg.ctx_channels, cfg.agg_channels,
        )  # fmt: skip
        # log2 gain per rate anchor and channel, lowest rate first: for y and, as in
        # Cui et al. (CVPR 2021), for z, so that side information shrinks with the rate.
        anchors = torch.linspace(-1.5, 1.0, cfg.rate_anchors)[:, None]
        self.gain_anchors = nn.Parameter(anchors.repeat(1, m))
        z_anchors = torch.linspace(-1.0, 0.0, cfg.rate_anchors)[:, None]
        self.z_gain_anchors = nn.Parameter(z_anchors.repeat(1, cfg.z_channels))

    def _interp_q6(self, anchors: Tensor, rate: Tensor) -> Tensor:
        k = self.cfg.rate_anchors
        pos = rate.clamp(0, 1) * (k - 1)
        j = pos.floor().clamp(max=k - 2).long()
        f = (pos - j)[:, None]
        return ste_round((anchors[j] * (1 - f) + anchors[j + 1] * f) * 64)

    def log2_gain_q6(self, rate: Tensor) -> Tensor:
        """(B, M) log2 gains of y in 1/64 units for rates in [0, 1] (straight-through)."""
        return self._interp_q6(self.gain_anchors, rate)

    def z_log2_gain_q6(self, rate: Tensor) -> Tensor:
        """(B, Cz) log2 gains of z in 1/64 units."""
        return self._interp_q6(self.z_gain_anchors, rate)

    def forward(self, x: Tensor, rate: Tensor, amp: bool = False) -> dict[str, Tensor]:
        """x in [0, 1], (B, 3, H, W) with H, W multiples of 64; rate (B,) in [0, 1].

        ``amp`` runs the float transforms (g_a, h_a, g_s) in bf16; the entropy model and
        the exact layers always run in fp32.
        """
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            y = self.g_a(x)
            z = self.h_a(y)
        y, z = y.float(), z.float()
        z_gain = self.z_log2_gain_q6(rate)[:, :, None, None]
        z_g = z * torch.exp2(z_gain / 64)
        z_lik = self.z_prior.likelihood(z_g + torch.empty_like(z).uniform_(-0.5, 0.5))
        z_q = ste_round(ste_round(z_g) * torch.exp2(-z_gain / 64) * 2.0**LATENT_FRAC)
        y_hat, y_lik = self.scctx(y, z_q, self.log2_gain_q6(rate), noise=self.training)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            x_hat = self.g_s(y_hat).float()
        return {"x_hat": x_hat, "y_likelihoods": y_lik, "z_likelihoods": z_lik}

    def qconvs(self) -> list[tuple[str, QConv2d]]:
        return [(n, mod) for n, mod in self.named_modules() if isinstance(mod, QConv2d)]

    def freeze(self) -> None:
        for _, mod in self.qconvs():
            mod.freeze()

    def unfreeze(self) -> None:
        for _, mod in self.qconvs():
            mod.unfreeze()
