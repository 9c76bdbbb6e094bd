"""The word fusion block: a small two-scale network run only in tiles around carried words.

    x̂ = x̃ + r · N([x̃, g, composite, flag, polarity, r])

(inputs: :mod:`textboost.fusion.word_inputs`; r is the region weight, 0 outside the words'
grown rectangles, so x̂ = x̃ there exactly). What the paper's block (§4.2,
:class:`textboost.fusion.model.FusionBlock`, kept as the reference) lacks, measured on
our data: its three 3×3 convolutions reach 3 px, while at 0.03 bpp a glyph is smeared
over the whole word height (8–30 px). N is a small U-Net: a residual unit at full
resolution, two (dilations 1 and 2) at 1/2 and two at 1/4, back up with skips, a
residual unit at each scale on the way, so a pixel sees about ±50 px; and it reads the
carried style (colours, polarity), which tells it which way a glyph's ink goes.

The last convolution starts at zero: the untrained block is the identity. Tile sides must
be multiples of ``TILE_MULTIPLE`` (:func:`textboost.fusion.regions.pad_tile`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textboost.fusion.word_inputs import INPUT_CHANNELS

__all__ = ["WordFusionNet"]


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation)


class _Res(nn.Module):
    def __init__(self, c: int, dilation: int = 1) -> None:
        super().__init__()
        self.a = _conv(c, c, dilation=dilation)
        self.b = _conv(c, c, dilation=dilation)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.b(F.leaky_relu(self.a(F.leaky_relu(x, 0.1)), 0.1))


class WordFusionNet(nn.Module):
    """x̃ (B, 3, H, W) in [0, 1] and the word inputs (B, 7, H, W) to x̂ (B, 3, H, W),
    H and W multiples of 4; x̂ is unclamped (training sees it raw, the runtime clips)."""

    kind = "words"  # run around the carried words (the paper's block: the whole image)

    def __init__(self, channels: Sequence[int] = (16, 32)) -> None:
        super().__init__()
        c1, c2 = (int(c) for c in channels)
        if c1 < 4 or c2 < 4:
            raise ValueError(f"word block channels {tuple(channels)}: expected two sizes >= 4")
        self.channels = (c1, c2)
        self.head = _conv(3 + INPUT_CHANNELS, c1)
        self.full_in = _Res(c1)
        self.down1 = _conv(c1, c2, stride=2)
        self.half_in = nn.Sequential(_Res(c2), _Res(c2, 2))
        self.down2 = _conv(c2, c2, stride=2)
        self.quarter = nn.Sequential(_Res(c2), _Res(c2, 2))
        self.half_out = _Res(c2)
        self.to_full = nn.Conv2d(c2, c1, 1)
        self.full_out = _Res(c1)
        self.tail = _conv(c1, 3)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: Tensor, inputs: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"decoded tile of shape {tuple(x.shape)}, expected (B, 3, H, W)")
        if inputs.shape[1] != INPUT_CHANNELS or inputs.shape[2:] != x.shape[2:]:
            raise ValueError(
                f"word inputs of shape {tuple(inputs.shape)}, expected "
                f"(B, {INPUT_CHANNELS}, {x.shape[2]}, {x.shape[3]})"
            )
        f = self.full_in(self.head(torch.cat([x, inputs], dim=1)))
        h = self.half_in(self.down1(F.leaky_relu(f, 0.1)))
        q = self.quarter(self.down2(F.leaky_relu(h, 0.1)))
        h = self.half_out(h + F.interpolate(q, scale_factor=2.0, mode="nearest"))
        f = self.full_out(f + self.to_full(F.interpolate(h, scale_factor=2.0, mode="nearest")))
        delta = self.tail(F.leaky_relu(f, 0.1))
        return x + inputs[:, -1:] * delta
