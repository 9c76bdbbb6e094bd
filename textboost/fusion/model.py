"""The fusion block of the paper (§4.2, Fig. 4): the guidance map steers the decoded image.

    x̂ = x̃ + P(A([E(x̃), g ⊙ x̃]))

g ⊙ x̃ (3 ch) lets white glyphs of the guidance map take the decoder's colours; E, a 1×1
convolution, expands x̃ to 13 channels; the 16 concatenated channels pass the attention
module of Cheng et al. 2020 (a trunk of three 1×1 → 3×3 → 1×1 residual units, gated by
the sigmoid of a mask branch of three more and a 1×1 convolution); P, a 1×1 convolution,
projects back to RGB.

Our choice (the paper gives the projection, not a skip): the block predicts a correction
added to x̃ and P starts at zero, so the untrained block is the identity. It is therefore
always safe to run, with an all-zero guidance map too, where it acts as a post-filter
(the paper's Kodak gain comes with no text at all).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from textboost.blocks import AttentionBlock

__all__ = ["FUSION_CHANNELS", "FusionBlock"]

FUSION_CHANNELS = 16  # 13 expanded from x̃ + 3 of g ⊙ x̃ (Fig. 4b)


class FusionBlock(nn.Module):
    """x̃ (B, 3, H, W) and g (B, 1 or 3, H, W), both in [0, 1], to x̂ (B, 3, H, W).

    x̂ is not clamped: training sees the raw output, the runtime clips to 8 bits.
    """

    def __init__(self, channels: int = FUSION_CHANNELS) -> None:
        super().__init__()
        if channels <= 3 or channels % 2:
            raise ValueError(f"fusion channels {channels}: expected an even number > 3")
        self.expand = nn.Conv2d(3, channels - 3, 1)
        self.attention = AttentionBlock(channels)
        self.project = nn.Conv2d(channels, 3, 1)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"decoded image of shape {tuple(x.shape)}, expected (B, 3, H, W)")
        if g.dim() != 4 or g.shape[1] not in (1, 3) or g.shape[2:] != x.shape[2:]:
            raise ValueError(
                f"guidance of shape {tuple(g.shape)}, expected (B, 1 or 3, {x.shape[2]}, "
                f"{x.shape[3]})"
            )
        f = torch.cat([self.expand(x), g * x], dim=1)
        return x + self.project(self.attention(f))
