"""Torch layers of the codec: strided (de)convolutions, straight-through rounding and the
fake-quantised exact convolution.

The float blocks it shares with the fusion block (residual bottleneck, attention) live in
:mod:`textboost.blocks`. The float layers run on one end only (g_a, h_a at the sender;
g_s at the receiver) and may use any precision or backend. :class:`QConv2d` is the
training-time image of :class:`textboost.codec.exact.IntConv`: it computes the
same integer formula with straight-through rounding, so training sees the quantisation
the coder will use; after :meth:`QConv2d.freeze` its forward in float64 is bit-identical
to the numpy path.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textboost.codec.exact import ACT_MAX, PARAM_MAX

__all__ = [
    "QConv2d",
    "conv",
    "deconv",
    "ste_floor",
    "ste_round",
]


def conv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def deconv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(
        cin, cout, k, stride=stride, padding=k // 2, output_padding=stride - 1
    )


def ste_round(x: Tensor) -> Tensor:
    """floor(x + 0.5) forward (ties up, like the integer path), identity gradient."""
    return x + (torch.floor(x + 0.5) - x).detach()


def ste_floor(x: Tensor) -> Tensor:
    return x + (torch.floor(x) - x).detach()


class QConv2d(nn.Module):
    """Convolution with int8 weights and fixed-point activations (stride 1, 'same').

    Inputs are integers in units of 2^-in_frac; outputs integers in units of
    2^-out_frac, clamped to [0, 255] (a saturating ReLU) or, with ``signed``, to ±32767.
    Weights are quantised per output channel to ±127; the requantisation multiplier
    is a 15-bit integer and a power-of-two shift, exactly as the integer path applies it.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int,
        in_frac: int,
        out_frac: int,
        *,
        signed: bool = False,
        mask: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.kernel = k
        self.in_scale = 2.0**-in_frac
        self.out_scale = 2.0**-out_frac
        self.lo, self.hi = (-PARAM_MAX, PARAM_MAX) if signed else (0, ACT_MAX)
        self.weight = nn.Parameter(torch.empty(cout, cin, k, k))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        # Start with outputs of order one in real units whatever the input scale.
        self.bias = nn.Parameter(torch.zeros(cout))
        self.register_buffer("mask", mask if mask is not None else torch.ones(1, 1, k, k))
        self.register_buffer("w_int", torch.zeros(0))
        self.register_buffer("b_int", torch.zeros(0))
        self.register_buffer("mult", torch.zeros(0))
        self.register_buffer("shift", torch.zeros(0))

    @property
    def frozen(self) -> bool:
        return self.w_int.numel() > 0

    def _quantise(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        w = self.weight * self.mask
        s_w = (w.detach().abs().amax(dim=(1, 2, 3)).clamp_min(1e-8) / 127.0).to(torch.float64)
        w_int = ste_round(w / s_w.to(w.dtype)[:, None, None, None])
        acc_scale = s_w * self.in_scale
        # |bias| < 2^31 keeps (acc + bias)·mult below 2^53 in the integer path.
        b_int = ste_round(self.bias / acc_scale.to(self.bias.dtype)).clamp(-(2**31), 2**31)
        m = acc_scale / self.out_scale
        shift = (14.0 - torch.floor(torch.log2(m))).clamp(1, 62)
        mult = torch.floor(m * torch.exp2(shift) + 0.5)
        return w_int, b_int, mult, shift

    @torch.no_grad()
    def freeze(self) -> None:
        """Fix the integer tables (the export), after which forward uses only them."""
        w_int, b_int, mult, shift = self._quantise()
        self.w_int = w_int.detach().clone()
        self.b_int = b_int.detach().clone()
        self.mult = mult
        self.shift = shift

    def unfreeze(self) -> None:
        for name in ("w_int", "b_int", "mult", "shift"):
            setattr(self, name, torch.zeros(0, device=self.weight.device))

    def forward(self, x: Tensor) -> Tensor:
        if self.frozen:
            w_int, b_int, mult, shift = self.w_int, self.b_int, self.mult, self.shift
        else:
            w_int, b_int, mult, shift = self._quantise()
        dt = x.dtype
        acc = F.conv2d(x, w_int.to(dt), padding=self.kernel // 2)
        scale = (mult / torch.exp2(shift)).to(dt)[:, None, None]
        out = ste_floor((acc + b_int.to(dt)[:, None, None]) * scale + 0.5)
        return out.clamp(self.lo, self.hi)

    def tables(self) -> dict[str, Tensor]:
        """The integer tables for the numpy path (requires :meth:`freeze`)."""
        if not self.frozen:
            raise RuntimeError("QConv2d.tables() before freeze(): run model.freeze() first")
        return {
            "w": self.w_int.to(torch.int8),
            "b": self.b_int.to(torch.int64),
            "mult": self.mult.to(torch.int32),
            "shift": self.shift.to(torch.int8),
        }
