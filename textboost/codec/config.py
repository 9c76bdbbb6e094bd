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
    """Sizes of the network. The defaults are the intended default model's.

    N=128 / M=192 against ELIC's 192/320: at ≤ 0.15 bpp most of ELIC's 320 latent
    channels carry almost nothing, and g_a falls from ≈ 255 to 113 GMAC per megapixel
    (counted with forward hooks), which a Jetson Orin GPU runs in fp16 within the
    edge's per-image budget and which trains in a few GPU hours. The exact entropy path
    uses 3×3/1×1 kernels instead of ELIC's 5×5 to stay near 10 M symbols/s on a CPU.
    The first shipped checkpoint is a smaller CPU-trained variant (see the model card).
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
