"""Rate policies: how the size of an image's stream is chosen, and the bpp ↔ bytes rule.

A policy is a small frozen value with a ``settings`` string (the encode cache's key) and
``encode(codec, img, text=True)`` (``text=False``: no words carried; the encode pipeline
adds the text setting to its cache key). The edge sender, the simulator and the CLIs all
use these three; the simulator's adaptive budget is a :class:`ByteBudget` chosen at each
capture.

A budget of ``bpp`` bits per pixel is ``floor(bpp × W × H / 8)`` bytes of the whole file
(:func:`budget_bytes`), here and in the evaluation alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from textboost.capture import CaptureMeta
    from textboost.codec.api import Codec

__all__ = ["ByteBudget", "FixedBpp", "FixedRate", "RatePolicy", "bpp_of", "budget_bytes"]

MIN_BUDGET_BYTES = 32  # a header and z need about this much at the smallest scale


def budget_bytes(bpp: float, width: int, height: int) -> int:
    """Byte budget for ``bpp`` bits per pixel of a ``width``×``height`` image:
    floor(bpp × W × H / 8). Raises: ValueError for bpp <= 0."""
    if not bpp > 0:
        raise ValueError(f"bpp must be > 0, got {bpp}")
    return math.floor(bpp * width * height / 8)


def bpp_of(n_bytes: int, width: int, height: int) -> float:
    """Bits per pixel of ``n_bytes`` for a ``width``×``height`` image."""
    return 8 * n_bytes / (width * height)


@dataclass(frozen=True, slots=True)
class FixedRate:
    """The codec's rate knob, 0.0 (≈ 0.01 bpp) .. 1.0 (≈ 0.15 bpp)."""

    rate: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate {self.rate}: expected 0.0..1.0")

    @property
    def settings(self) -> str:
        return f"rate={self.rate:.6g}"

    def encode(
        self, codec: Codec, img: np.ndarray, text: bool = True, meta: CaptureMeta | None = None
    ) -> bytes:
        return codec.encode(img, rate=self.rate, text=text, meta=meta)


@dataclass(frozen=True, slots=True)
class FixedBpp:
    """Highest quality whose stream fits ``bpp`` bits per pixel (:func:`budget_bytes`)."""

    bpp: float

    def __post_init__(self) -> None:
        if not 0.0 < self.bpp <= 24.0:
            raise ValueError(f"bpp {self.bpp}: expected > 0 and <= 24")

    @property
    def settings(self) -> str:
        return f"bpp={self.bpp:.6g}"

    def encode(
        self, codec: Codec, img: np.ndarray, text: bool = True, meta: CaptureMeta | None = None
    ) -> bytes:
        h, w = img.shape[:2]
        budget = budget_bytes(self.bpp, w, h)
        return codec.encode_to_budget(img, max_bytes=budget, text=text, meta=meta)


@dataclass(frozen=True, slots=True)
class ByteBudget:
    """Highest quality whose stream fits ``max_bytes`` per image."""

    max_bytes: int

    def __post_init__(self) -> None:
        if self.max_bytes < MIN_BUDGET_BYTES:
            raise ValueError(
                f"max_bytes {self.max_bytes}: expected >= {MIN_BUDGET_BYTES} (header and z)"
            )

    @property
    def settings(self) -> str:
        return f"max_bytes={self.max_bytes}"

    def encode(
        self, codec: Codec, img: np.ndarray, text: bool = True, meta: CaptureMeta | None = None
    ) -> bytes:
        return codec.encode_to_budget(img, max_bytes=self.max_bytes, text=text, meta=meta)


RatePolicy = FixedRate | FixedBpp | ByteBudget
