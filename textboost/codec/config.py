"""Network sizes, torch-free so that the edge can read a model file without torch."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

__all__ = ["Y_STRIDE", "Z_STRIDE", "CodecConfig"]

Y_STRIDE = 16
Z_STRIDE = 64


@dataclass(frozen=True)
class CodecConfig:
    """Sizes of the network. The defaults are the shipped default model's.

    N=128 / M=192 (ELIC uses 192/320): at ≤ 0.15 bpp most of the 320 channels of ELIC
    carry nothing, and the smaller transform trains in a few GPU hours and runs g_a
    on a Jetson Orin at about 1 s per megapixel in fp16 (g_a is ≈ 40 GMAC/MPix here).
    """

    N: int = 128
    M: int = 192
    z_channels: int = 128
    groups: tuple[int, ...] = (16, 16, 32, 64, 64)
    res_blocks: int = 3
    attention: bool = True
    hs_channels: int = 128
    hs_mid_channels: int = 64
    ctx_channels: int = 64
    agg_channels: tuple[int, ...] = (32, 32, 64, 128, 128)
    rate_anchors: int = 6
    lambda_min: float = 1e-4
    lambda_max: float = 4e-3
    z_radius: int = 48
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if sum(self.groups) != self.M:
            raise ValueError(f"groups {self.groups} sum to {sum(self.groups)}, expected M={self.M}")
        if len(self.agg_channels) != len(self.groups):
            raise ValueError("agg_channels needs one width per channel group")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CodecConfig:
        d = json.loads(text)
        d["groups"] = tuple(d["groups"])
        d["agg_channels"] = tuple(d["agg_channels"])
        return cls(**d)

    def lmbda(self, rate):
        """λ for rates in [0, 1] (array or tensor): geometric between lambda_min and max."""
        lo, hi = math.log(self.lambda_min), math.log(self.lambda_max)
        return (
            (lo + rate * (hi - lo)).exp()
            if hasattr(rate, "exp")
            else math.exp(lo + rate * (hi - lo))
        )
