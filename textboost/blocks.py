"""Float building blocks shared by the codec's transforms and the fusion block.

ELIC's residual bottleneck (He et al. 2022) and the simplified attention of Cheng et al.
2020. They run on one end only and may use any precision or backend; nothing the entropy
coder needs is computed here. Torch only: the codec (:mod:`textboost.codec.model`) and the
fusion block (:mod:`textboost.fusion.model`) both import them, neither imports the other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AttentionBlock", "ResidualBottleneck"]


def _bottleneck(n: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(n, n // 2, 1),
        nn.ReLU(inplace=True),
        nn.Conv2d(n // 2, n // 2, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(n // 2, n, 1),
    )


class ResidualBottleneck(nn.Module):
    """ELIC's residual bottleneck block: 1×1 → N/2, 3×3, 1×1 → N, identity shortcut."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.body = _bottleneck(n)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class _ResidualUnit(ResidualBottleneck):
    """Cheng et al.'s residual unit: the same bottleneck, with a ReLU after the sum."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(super().forward(x))


class AttentionBlock(nn.Module):
    """Simplified attention of Cheng et al. 2020, as used by ELIC: x + a(x)·σ(b(x))."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(*(_ResidualUnit(n) for _ in range(3)))
        self.mask = nn.Sequential(*(_ResidualUnit(n) for _ in range(3)), nn.Conv2d(n, n, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.trunk(x) * torch.sigmoid(self.mask(x))
