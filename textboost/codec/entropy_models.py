"""Entropy models (torch side): the factorized prior for z and the SCCTX parameter network.

SCCTX (He et al., ELIC, CVPR 2022): y is split into uneven channel groups; each group is
coded in two checkerboard passes (anchors, then non-anchors), its Gaussian parameters
aggregated from the hyperprior, a channel context over all earlier groups and (for
non-anchors) a spatial context over the group's own anchors. Every layer here is a
:class:`QConv2d`, so the parameters are integer-exact on both ends (see ``exact.py``);
kernels are 3×3 and 1×1 rather than ELIC's 5×5 to keep the exact path about 10× cheaper.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textboost.codec.exact import (
    HIDDEN_FRAC,
    LATENT_FRAC,
    N_SCALES,
    PARAM_FRAC,
    PARAM_MAX,
    SCALE_MIN_LEVEL,
)
from textboost.codec.layers import QConv2d, ste_floor, ste_round

__all__ = ["SCCTX", "FactorizedPrior", "anchor_mask", "gaussian_likelihood"]

LIKELIHOOD_BOUND = 1e-9


def anchor_mask(h: int, w: int, device: torch.device | None = None) -> Tensor:
    """Checkerboard anchors: positions with (i + j) even are coded first."""
    i = torch.arange(h, device=device)[:, None]
    j = torch.arange(w, device=device)[None, :]
    return ((i + j) % 2 == 0)[None, None]


def _plus_mask() -> Tensor:
    """3×3 spatial-context kernel seeing only the four anchor neighbours of a non-anchor."""
    m = torch.zeros(1, 1, 3, 3)
    m[0, 0, 0, 1] = m[0, 0, 1, 0] = m[0, 0, 1, 2] = m[0, 0, 2, 1] = 1.0
    return m


def _std_cdf(x: Tensor) -> Tensor:
    return 0.5 * torch.erfc(-x * (2**-0.5))


def gaussian_likelihood(u: Tensor, sigma: Tensor) -> Tensor:
    """P(round(u)) under N(0, σ) ⊛ U(−½, ½), evaluated on the tail-accurate side."""
    v = u.abs()
    p = _std_cdf((0.5 - v) / sigma) - _std_cdf((-0.5 - v) / sigma)
    return p.clamp_min(LIKELIHOOD_BOUND)


class FactorizedPrior(nn.Module):
    """Ballé et al. 2018 non-parametric factorized density, one per channel."""

    def __init__(self, channels: int, filters: Sequence[int] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = float(np.log(np.expm1(1 / scale / dims[i + 1])))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def _logits_cumulative(self, x: Tensor) -> Tensor:
        for i, (m, b) in enumerate(zip(self.matrices, self.biases, strict=True)):
            x = torch.matmul(F.softplus(m), x) + b
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, z: Tensor) -> Tensor:
        """Probability of the unit bin centred on each value of z (B, C, H, W)."""
        b, c, h, w = z.shape
        v = z.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self._logits_cumulative(v - 0.5)
        upper = self._logits_cumulative(v + 0.5)
        sign = -torch.sign(lower + upper).detach()
        p = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        p = p.reshape(c, b, h, w).permute(1, 0, 2, 3)
        return p.clamp_min(LIKELIHOOD_BOUND)

    @torch.no_grad()
    def pmf_table(self, radius: int) -> np.ndarray:
        """(C, 2·radius+1) float64 probabilities of the integers −radius..radius."""
        c = self.matrices[0].shape[0]
        v = torch.arange(-radius, radius + 1, dtype=torch.float32)
        v = v.view(1, 1, -1).expand(c, 1, -1)
        lower = self._logits_cumulative(v - 0.5)
        upper = self._logits_cumulative(v + 0.5)
        sign = -torch.sign(lower + upper)
        p = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        return p[:, 0].double().numpy()


class SCCTX(nn.Module):
    """Exact hyper-synthesis h_s, channel and spatial contexts, parameter aggregation."""

    def __init__(
        self,
        z_channels: int,
        groups: Sequence[int],
        hs_channels: int,
        hs_mid_channels: int,
        ctx_channels: int,
        agg_channels: Sequence[int],
    ) -> None:
        super().__init__()
        self.groups = tuple(groups)
        m = sum(groups)
        h, h2 = hs_channels, hs_mid_channels
        f, lf, pf = HIDDEN_FRAC, LATENT_FRAC, PARAM_FRAC
        # h_s: z (integers) → 2M hyper features at latent resolution, upsampling by two
        # depth-to-space steps so that the costly 3×3 work happens at low resolution.
        self.hs = nn.ModuleList(
            [
                QConv2d(z_channels, h, 3, lf, f),
                QConv2d(h, 4 * h2, 1, f, f),
                QConv2d(h2, 4 * h2, 3, f, f),
                QConv2d(h2, 2 * m, 1, f, f),
            ]
        )
        self.ch_ctx = nn.ModuleList()
        self.sp_ctx = nn.ModuleList()
        self.agg = nn.ModuleList()
        start = 0
        for k, g in enumerate(groups):
            if k > 0:
                self.ch_ctx.append(
                    nn.Sequential(
                        QConv2d(start, ctx_channels, 3, lf, f),
                        QConv2d(ctx_channels, 2 * g, 1, f, f),
                    )
                )
            self.sp_ctx.append(QConv2d(g, 2 * g, 3, lf, f, mask=_plus_mask()))
            cin = 2 * g * (3 if k > 0 else 2)
            a = agg_channels[k]
            self.agg.append(
                nn.Sequential(QConv2d(cin, a, 1, f, f), QConv2d(a, 2 * g, 1, f, pf, signed=True))
            )
            start += g

    def hyper(self, z_q: Tensor) -> Tensor:
        """h_s of ẑ given in 1/64 units (dequantised with the rate's z step)."""
        h = self.hs[0](z_q)
        h = F.pixel_shuffle(self.hs[1](h), 2)
        h = F.pixel_shuffle(self.hs[2](h), 2)
        return self.hs[3](h)

    def channel_context(self, k: int, y_prev_q: Tensor) -> Tensor:
        return self.ch_ctx[k - 1](y_prev_q)

    def spatial_context(self, k: int, anchors_q: Tensor) -> Tensor:
        return self.sp_ctx[k](anchors_q)

    def params(
        self, k: int, hyper_k: Tensor, ch: Tensor | None, sp: Tensor
    ) -> tuple[Tensor, Tensor]:
        """(μ, log2 σ_y), both integers in 1/64 units."""
        parts = [hyper_k, sp] if ch is None else [hyper_k, ch, sp]
        out = self.agg[k](torch.cat(parts, dim=1))
        g = self.groups[k]
        return out[:, :g], out[:, g:]

    def forward(
        self, y: Tensor, z_q: Tensor, log2_gain_q6: Tensor, noise: bool
    ) -> tuple[Tensor, Tensor]:
        """Training/reference pass over all groups: (ŷ in latent units, likelihoods).

        ``log2_gain_q6`` is (B, M): per-sample, per-channel log2 gain in 1/64 units.
        """
        hyper = self.hyper(z_q)
        _b, _, h, w = y.shape
        anchors = anchor_mask(h, w, y.device).to(y.dtype)
        y_hat_q: list[Tensor] = []
        liks: list[Tensor] = []
        start = 0
        for k, g in enumerate(self.groups):
            sl = slice(start, start + g)
            hyp = hyper[:, 2 * start : 2 * (start + g)]
            gain = log2_gain_q6[:, sl, None, None]
            ch = self.channel_context(k, torch.cat(y_hat_q, dim=1)) if k > 0 else None
            mu_a, ls_a = self.params(k, hyp, ch, torch.zeros_like(hyp[:, : 2 * g]))
            ya_q, _ = _quantise(y[:, sl], mu_a, ls_a, gain, noise=False)
            sp = self.spatial_context(k, ya_q * anchors)
            mu_n, ls_n = self.params(k, hyp, ch, sp)
            mu = torch.where(anchors > 0, mu_a, mu_n)
            ls = torch.where(anchors > 0, ls_a, ls_n)
            yq, lik = _quantise(y[:, sl], mu, ls, gain, noise=noise)
            y_hat_q.append(yq)
            liks.append(lik)
            start += g
        y_hat = torch.cat(y_hat_q, dim=1) * 2.0**-LATENT_FRAC
        return y_hat, torch.cat(liks, dim=1)


def sigma_of(logsigma_q6: Tensor, log2_gain_q6: Tensor) -> Tensor:
    """σ in symbol units, snapped to the scale table exactly as the coder indexes it."""
    level = ste_floor((logsigma_q6 + log2_gain_q6 + 4) / 8)
    level = level.clamp(SCALE_MIN_LEVEL, SCALE_MIN_LEVEL + N_SCALES - 1)
    return torch.exp2(level / 8)


def _quantise(
    y: Tensor, mu_q6: Tensor, ls_q6: Tensor, gain_q6: Tensor, noise: bool
) -> tuple[Tensor, Tensor]:
    """(ŷ in 1/64 units with straight-through rounding, likelihood of the symbol)."""
    step = torch.exp2(-gain_q6 / 64)
    mu = mu_q6 * 2.0**-PARAM_FRAC
    u = (y - mu) / step
    s = ste_round(u)
    y_q = ste_round((mu + s * step) * 2.0**LATENT_FRAC).clamp(-PARAM_MAX, PARAM_MAX)
    u_rate = u + torch.empty_like(u).uniform_(-0.5, 0.5) if noise else s
    return y_q, gaussian_likelihood(u_rate, sigma_of(ls_q6, gain_q6))
