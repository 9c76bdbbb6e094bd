"""Rate policies: how the size of an image's stream is chosen, and the bpp ↔ bytes rule.

A policy is a small frozen value with a ``settings`` string (the encode cache's key) and
``encode(encoder, img, text=True)`` (``text=False``: no words carried; the encode pipeline
adds the text setting to its cache key). The encoder is the method's pipeline
(:class:`textboost.pipeline.api.Pipeline`) or anything with its two calls
(:class:`Encoder`: the simulator's synthetic codec). The edge sender, the simulator and the CLIs all
use these three; the simulator's adaptive budget is a :class:`ByteBudget` chosen at each
capture.

A budget of ``bpp`` bits per pixel is ``floor(bpp × W × H / 8)`` bytes of the whole file
(:func:`budget_bytes`), here and in the evaluation alike.

The ``check_*`` functions are the one home of the argument checks: the :class:`Codec` API,
the policies and the CLIs (with their option names, ``name="--bpp"``) raise the same
one-line ValueError before any work starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from textboost.codec.budget import BudgetError
from textboost.codec.refine import check_effort

if TYPE_CHECKING:
    from textboost.bitstream.capture import CaptureMeta

__all__ = [
    "MIN_BUDGET_BYTES",
    "ByteBudget",
    "Encoder",
    "FixedBpp",
    "FixedRate",
    "RatePolicy",
    "bpp_of",
    "budget_bytes",
    "check_bpp",
    "check_bpp_budget",
    "check_max_bytes",
    "check_rate",
]

# The smallest stream of any image: header, empty text section and the shortest z stream,
# no y group (a 1×1 image at the smallest scale; tests/test_arguments.py keeps it exact).
MIN_BUDGET_BYTES = 32
MAX_BPP = 24.0  # an uncompressed 8-bit RGB image


class Encoder(Protocol):
    """What a policy calls: a fixed rate, or the best stream within a budget."""

    def encode(self, img, rate: float = ..., text: bool = ..., meta=..., **kw) -> bytes: ...

    def encode_to_budget(
        self, img, max_bytes: int | None = ..., bpp: float | None = ..., text: bool = ...,
        meta=..., **kw,
    ) -> bytes: ...  # fmt: skip


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_rate(rate: float, name: str = "rate") -> float:
    """Raises ValueError unless ``rate`` is a number in 0..1."""
    if not (_number(rate) and 0.0 <= rate <= 1.0):
        raise ValueError(f"{name} {rate}: expected a number from 0 to 1")
    return float(rate)


def check_bpp(bpp: float, name: str = "bpp") -> float:
    """Raises ValueError unless ``bpp`` is a positive number of at most ``MAX_BPP``."""
    if not (_number(bpp) and bpp > 0):
        raise ValueError(f"{name} {bpp}: expected a positive number")
    if bpp > MAX_BPP:
        raise ValueError(f"{name} {bpp}: expected at most {MAX_BPP:g} (uncompressed RGB)")
    return float(bpp)


def check_max_bytes(max_bytes: int, name: str = "max_bytes") -> int:
    """Raises ValueError unless ``max_bytes`` is a whole number of bytes, and
    :class:`BudgetError` (a ValueError) when it cannot hold the smallest stream of any
    image (``MIN_BUDGET_BYTES``)."""
    if not (isinstance(max_bytes, int | np.integer) and not isinstance(max_bytes, bool)):
        raise ValueError(f"{name} {max_bytes!r}: expected a whole number of bytes")
    if max_bytes <= 0:
        raise ValueError(f"{name} {max_bytes}: expected a positive number of bytes")
    if max_bytes < MIN_BUDGET_BYTES:
        raise BudgetError(
            f"{name} {max_bytes}: below the smallest stream of any image ({MIN_BUDGET_BYTES} "
            f"bytes: header and z); expected at least {MIN_BUDGET_BYTES}"
        )
    return int(max_bytes)


def check_bpp_budget(bpp: float, width: int, height: int, what: str = "image") -> int:
    """The byte budget of ``bpp`` for this image (:func:`budget_bytes`).

    Raises: ValueError for a bad ``bpp``; :class:`BudgetError` naming ``what`` (the file)
    and the smallest size that can be coded at this bpp when the budget cannot hold even
    the smallest stream (a 1×1 image at 0.03 bpp is 0 bytes)."""
    budget = budget_bytes(check_bpp(bpp), width, height)
    if budget < MIN_BUDGET_BYTES:
        k = math.sqrt(8 * MIN_BUDGET_BYTES / bpp / (width * height))
        w, h = math.ceil(width * k), math.ceil(height * k)
        raise BudgetError(
            f"{what}: {width}×{height} pixels is too small to code at {bpp:g} bpp ({budget} "
            f"bytes, and the smallest stream is {MIN_BUDGET_BYTES} bytes: at least {w}×{h} "
            "at this bpp)"
        )
    return budget


def budget_bytes(bpp: float, width: int, height: int) -> int:
    """Byte budget for ``bpp`` bits per pixel of a ``width``×``height`` image:
    floor(bpp × W × H / 8). Raises: ValueError for a bpp that is not positive."""
    check_bpp(bpp)
    return math.floor(bpp * width * height / 8)


def bpp_of(n_bytes: int, width: int, height: int) -> float:
    """Bits per pixel of ``n_bytes`` for a ``width``×``height`` image."""
    return 8 * n_bytes / (width * height)


@dataclass(frozen=True, slots=True)
class FixedRate:
    """The codec's rate knob, 0.0 (≈ 0.01 bpp) .. 1.0 (≈ 0.15 bpp)."""

    rate: float
    effort: int = 0  # encoder-side refinement (textboost.codec.refine); 0: none

    def __post_init__(self) -> None:
        check_rate(self.rate)
        check_effort(self.effort)

    def check(self, width: int, height: int, what: str = "image") -> None:
        """Any image codes at a fixed rate."""

    @property
    def settings(self) -> str:
        return f"rate={self.rate:.6g}" + _effort_key(self.effort)

    def encode(
        self, codec: Encoder, img: np.ndarray, text: bool = True, meta: CaptureMeta | None = None
    ) -> bytes:
        return codec.encode(img, rate=self.rate, text=text, meta=meta, **_effort(self.effort))


@dataclass(frozen=True, slots=True)
class FixedBpp:
    """Highest quality whose stream fits ``bpp`` bits per pixel (:func:`budget_bytes`)."""

    bpp: float
    effort: int = 0

    def __post_init__(self) -> None:
        check_bpp(self.bpp)
        check_effort(self.effort)

    def check(self, width: int, height: int, what: str = "image") -> None:
        """Raises ValueError (naming ``what``) for an image too small for this bpp, before
        the codec runs."""
        check_bpp_budget(self.bpp, width, height, what)

    @property
    def settings(self) -> str:
        return f"bpp={self.bpp:.6g}" + _effort_key(self.effort)

    def encode(
        self, codec: Encoder, img: np.ndarray, text: bool = True, meta: CaptureMeta | None = None
    ) -> bytes:
        return codec.encode_to_budget(
            img, bpp=self.bpp, text=text, meta=meta, **_effort(self.effort)
        )


@dataclass(frozen=True, slots=True)
class ByteBudget:
    """Highest quality whose stream fits ``max_bytes`` per image."""

    max_bytes: int
    effort: int = 0

    def __post_init__(self) -> None:
        check_max_bytes(self.max_bytes)
        check_effort(self.effort)

    def check(self, width: int, height: int, what: str = "image") -> None:
        """Every image has a stream of ``MIN_BUDGET_BYTES``; larger ones may need more
        (:class:`~textboost.codec.budget.BudgetError` from the search, with the minimum)."""

    @property
    def settings(self) -> str:
        return f"max_bytes={self.max_bytes}" + _effort_key(self.effort)

    def encode(
        self, codec: Encoder, img: np.ndarray, text: bool = True, meta: CaptureMeta | None = None
    ) -> bytes:
        return codec.encode_to_budget(
            img, max_bytes=self.max_bytes, text=text, meta=meta, **_effort(self.effort)
        )


RatePolicy = FixedRate | FixedBpp | ByteBudget


def _effort_key(effort: int) -> str:
    """The cache-key part of an effort: none at 0, so today's keys are unchanged."""
    return f";effort={effort}" if effort else ""


def _effort(effort: int) -> dict[str, int]:
    """``effort=`` only when refining: codecs without the argument (the link simulator's
    synthetic codec) keep working at effort 0."""
    return {"effort": effort} if effort else {}
