"""Fit a baseline codec to byte budgets the way a user would: quality × downscale search.

At 0.01–0.15 bpp even a codec's lowest quality often overshoots the budget at full size, so
for each downscale divisor d the image is shrunk by d (Lanczos), encoded, decoded and scaled
back up (Lanczos); per budget the search keeps the highest-PSNR candidate whose real file
size is within the budget, or nothing when no candidate fits.

Quality search: file size grows with quality for these codecs, so the largest fitting quality
is found by galloping up from the previous (smaller) budget's answer and then bisecting. Each
quality is encoded once per divisor and reused across budgets. Where sizes are not monotone,
a higher quality already encoded that also fits competes too (best PSNR wins). Every returned
candidate's bytes were measured, so it never exceeds its budget; places where the measured
sizes were not monotone in quality are counted so a broken assumption shows in the results.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from textboost.codec.image import psnr_db
from textboost.codec.rate import budget_bytes  # the one bpp -> bytes rule, re-exported
from textboost.eval.baselines import BaselineCodec, to_pil

__all__ = [
    "DOWNSCALE_DIVISORS",
    "BudgetSearch",
    "Candidate",
    "budget_bytes",
    "reconstruct",
    "scaled_size",
    "search_budgets",
]

# 0.01 bpp on a 768×512 image is 491 B: with the set stopping at 8 the coarsest size won for
# nearly every Kodak image at 0.01 bpp, so it reaches 24 (32×21 px); small sizes cost little.
DOWNSCALE_DIVISORS: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0, 24.0)


def scaled_size(width: int, height: int, divisor: float) -> tuple[int, int]:
    """Coded size for a downscale divisor (rounded, at least 1 pixel per side)."""
    if divisor < 1:
        raise ValueError(f"downscale divisor must be >= 1, got {divisor}")
    return max(1, round(width / divisor)), max(1, round(height / divisor))


@dataclass(frozen=True)
class Candidate:
    """The chosen encoding for one budget: real file bytes and its quality after upscaling."""

    data: bytes
    quality: int
    divisor: float
    coded_size: tuple[int, int]
    psnr_db: float

    @property
    def n_bytes(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class BudgetSearch:
    """Per-budget winners (None where nothing fits) and the search's bookkeeping."""

    budgets: tuple[int, ...]
    best: tuple[Candidate | None, ...]
    n_encodes: int
    monotonicity_violations: int


class _QualityLadder:
    """Encodes of one image at one coded size, cached by quality."""

    def __init__(self, codec: BaselineCodec, img: Image.Image) -> None:
        self._codec = codec
        self._img = img
        self._data: dict[int, bytes] = {}

    def data(self, quality: int) -> bytes:
        if quality not in self._data:
            self._data[quality] = self._codec.encode(self._img, quality)
        return self._data[quality]

    def fits(self, quality: int, budget: int) -> bool:
        return len(self.data(quality)) <= budget

    def largest_fitting(self, budget: int, start: int | None) -> int | None:
        """Largest quality whose file fits `budget`, searching up from `start` (known to fit)."""
        q_min, q_max = self._codec.quality_min, self._codec.quality_max
        lo = q_min if start is None else start
        if not self.fits(lo, budget):
            return None
        step = 1
        hi = lo + step
        while hi <= q_max and self.fits(hi, budget):  # gallop: lo fits, hi unknown
            lo, step = hi, step * 2
            hi = lo + step
        hi = min(hi, q_max + 1)  # hi fails or is past the range
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.fits(mid, budget):
                lo = mid
            else:
                hi = mid
        return lo

    def fitting_at_or_above(self, quality: int, budget: int) -> list[int]:
        """Encoded qualities >= `quality` whose files fit `budget`, ascending."""
        return sorted(q for q, d in self._data.items() if q >= quality and len(d) <= budget)

    @property
    def n_encodes(self) -> int:
        return len(self._data)

    def monotonicity_violations(self) -> int:
        sizes = [len(self._data[q]) for q in sorted(self._data)]
        return sum(1 for a, b in itertools.pairwise(sizes) if b < a)


def _decode_full(codec: BaselineCodec, data: bytes, size: tuple[int, int]) -> np.ndarray:
    out = codec.decode(data)
    if out.size != size:
        out = out.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(out)


def reconstruct(codec: BaselineCodec, cand: Candidate, size: tuple[int, int]) -> np.ndarray:
    """Decoded and upscaled image of a candidate at the original (W, H)."""
    return _decode_full(codec, cand.data, size)


def search_budgets(
    img: np.ndarray,
    codec: BaselineCodec,
    budgets: Sequence[int],
    divisors: Sequence[float] = DOWNSCALE_DIVISORS,
) -> BudgetSearch:
    """Best-PSNR candidate of `codec` for each byte budget of the HxWx3 uint8 `img`."""
    if not budgets:
        raise ValueError("no budgets given")
    if any(b < 0 for b in budgets):
        raise ValueError(f"budgets must be >= 0 bytes, got {list(budgets)}")
    if not divisors:
        raise ValueError("no downscale divisors given")
    pil = to_pil(img)
    size = pil.size
    order = sorted(range(len(budgets)), key=lambda i: budgets[i])
    best: list[Candidate | None] = [None] * len(budgets)
    n_encodes = 0
    violations = 0
    for divisor in divisors:
        coded = scaled_size(*size, divisor)
        small = pil if coded == size else pil.resize(coded, Image.Resampling.LANCZOS)
        ladder = _QualityLadder(codec, small)
        psnr_by_q: dict[int, float] = {}
        start: int | None = None
        for i in order:
            q = ladder.largest_fitting(budgets[i], start)
            if q is None:
                continue
            start = q
            # Sizes are not always monotone in quality: any higher quality already encoded
            # that also fits is a candidate too (no extra encodes, a few extra decodes).
            for cq in ladder.fitting_at_or_above(q, budgets[i]):
                data = ladder.data(cq)
                if len(data) > budgets[i]:  # cannot happen: every fit was measured
                    raise AssertionError(f"{codec.name}: {len(data)} B chosen for {budgets[i]} B")
                if cq not in psnr_by_q:
                    psnr_by_q[cq] = psnr_db(img, _decode_full(codec, data, size))
                cur = best[i]
                if cur is None or psnr_by_q[cq] > cur.psnr_db:
                    best[i] = Candidate(data, cq, float(divisor), coded, psnr_by_q[cq])
        n_encodes += ladder.n_encodes
        violations += ladder.monotonicity_violations()
    return BudgetSearch(tuple(budgets), tuple(best), n_encodes, violations)
