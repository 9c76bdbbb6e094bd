"""Meeting a byte budget with real bytes: rate bisection, then smaller scales, then groups.

Every candidate is a whole `.tbx` file, text section included, so whatever the sender
carries beside the image (the spotted words) is paid for inside the budget. The
downscale ladder is in eighths of a side (the container's scale byte); the baselines'
search in ``textboost.eval.budget`` walks the same idea with float divisors because their
files carry no scale field.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from textboost.codec.container import Container, coded_size
from textboost.codec.exact import RATE_MAX
from textboost.codec.image import psnr_db

if TYPE_CHECKING:
    from textboost.codec.api import Analysis, Codec

__all__ = ["BUDGET_SCALES", "MAX_CODED_PIXELS", "BudgetError", "fit_budget", "start_scale"]

# Downscale divisors (eighths) tried, in order, when a budget is below the full-size
# lowest rate: 1, 1.25, 1.5, 2, 2.5, 3, 4, 6, 8, 12, 16, 24 and 32 times smaller a side.
BUDGET_SCALES = (8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128, 192, 255)
# The transforms' memory grows with the coded image (≈ 0.25 GB a megapixel on top of
# ≈ 0.3 GB, torch CPU): larger frames are coded smaller, so a 24 MP camera frame needs
# no more memory than a 2 MP one (issue 17: ≤ 1.5 GB on a Jetson's shared 8 GB).
MAX_CODED_PIXELS = 1 << 21  # 2.1 MP: 1920×1080 still codes at full size
# The model's lowest rate costs ≥ 0.014 bpp of the coded image (tb-small-cpu3 on Kodak:
# 0.0149); a scale whose rate-0 stream cannot fit is skipped without running g_a on it.
MIN_CODED_BPP = 0.012
SEARCH_BELOW_RATE = RATE_MAX // 2  # below this rate, smaller scales are tried too
SEARCH_SCALES = 3  # at most this many smaller scales decoded and compared
RATE_RESOLUTION = 64  # 1/1024 of the range: finer steps change a handful of bytes


class BudgetError(ValueError):
    """No stream of this model fits the requested byte budget."""


def start_scale(width: int, height: int, budget: int | None = None) -> int:
    """The first ladder scale worth analysing for a ``budget``-byte stream of this image.

    Coded pixels are capped at ``MAX_CODED_PIXELS`` (bounded memory), and scales whose
    lowest rate would need more than ``budget`` bytes (at ``MIN_CODED_BPP``, an under-
    estimate) are skipped, so a large frame under a small budget never runs g_a at full
    size. The search still moves to smaller scales on real bytes from there. Without a
    budget: the largest scale within the memory cap.
    """
    for scale in BUDGET_SCALES:
        w, h = coded_size(width, height, scale)
        if w * h <= MAX_CODED_PIXELS and (budget is None or w * h * MIN_CODED_BPP / 8 <= budget):
            return scale
    return BUDGET_SCALES[-1]


def fit_budget(codec: Codec, an: Analysis, budget: int, search: bool = True) -> bytes:
    """The best stream of an analysed image within ``budget`` bytes (g_a already ran).

    The rate is searched on real encodings. When even the lowest rate does not fit, the
    image is coded smaller: the first of ``BUDGET_SCALES`` whose lowest rate fits. Near
    the bottom of the rate range (rate below ``SEARCH_BELOW_RATE``), a smaller image at a
    higher rate often looks better, so with ``search`` the sender decodes its candidate
    and the next smaller scales and keeps the best PSNR, stopping at the first that is
    worse (the baselines' search, on real bytes). Only when the smallest scale overflows
    too does the stream keep just the first k y groups (a valid, coarser stream; the rest
    are predicted). Raises :class:`BudgetError` when not even header, text and z fit.
    """
    scales = [sc for sc in BUDGET_SCALES if sc >= an.scale]
    for i, scale in enumerate(scales):
        if scale != an.scale:
            an = codec.analyse_smaller(an, scale)
        if (data := _fit_all_groups(codec, an, budget)) is not None:
            if search and Container.parse(data).header.rate < SEARCH_BELOW_RATE:
                return _search_scales(codec, an, data, scales[i + 1 :], budget)
            return data
    keep = codec.n_groups
    while len(data := _encode_groups(codec, an, 0, keep)) > budget:
        if keep == 0:
            text = f", {len(an.text)} of them text" if an.text else ""
            raise BudgetError(
                f"budget {budget} bytes is below the smallest stream of this image "
                f"({len(data)} bytes{text}: header and z alone at 1/{an.scale / 8:g} size)"
            )
        keep -= 1
    return _bisect_rate(codec, an, budget, keep, data)


def _search_scales(codec: Codec, an: Analysis, data: bytes, smaller: list[int], budget: int):
    """``data`` or a stream of a smaller scale, whichever decodes with the best PSNR.

    Compared without the fusion block: the choice is the codec's, and the edge need not
    carry the receiver's post-filter.
    """
    best, best_psnr = data, psnr_db(codec.decode(data, fusion=False), an.image)
    for scale in smaller[:SEARCH_SCALES]:
        cand = _fit_all_groups(codec, codec.analyse_smaller(an, scale), budget)
        if cand is None:
            break
        p = psnr_db(codec.decode(cand, fusion=False), an.image)
        if p <= best_psnr:
            break
        best, best_psnr = cand, p
    return best


def _fit_all_groups(codec: Codec, an: Analysis, budget: int) -> bytes | None:
    """The highest-rate stream of every y group within ``budget``; None when rate 0
    does not fit."""
    floor = _encode_groups(codec, an, 0, codec.n_groups)
    return _bisect_rate(codec, an, budget, codec.n_groups, floor) if len(floor) <= budget else None


def _bisect_rate(codec: Codec, an: Analysis, budget: int, keep: int, floor: bytes) -> bytes:
    """The highest rate whose stream of ``keep`` groups fits; ``floor`` is the rate-0
    stream of ``keep`` groups, already coded and known to fit.

    A safeguarded interpolation search: bytes grow roughly exponentially with the rate,
    so the next rate is interpolated on log bytes between the bracket's ends (kept at
    least 1/8 of the bracket inside it, and a plain bisection after a step that did not
    halve it). It stops when the bracket is ``RATE_RESOLUTION`` wide, as a bisection
    would, or when the fitting stream is within ``CLOSE_ENOUGH`` of the budget: 3–5
    encodes where a bisection takes 10.
    """
    best, lo, hi = floor, 0, RATE_MAX  # invariant: lo fits, hi does not
    top = _encode_groups(codec, an, hi, keep)
    if len(top) <= budget:
        return top
    lo_bytes, hi_bytes = len(floor), len(top)
    halved = True
    while hi - lo > RATE_RESOLUTION:
        width = hi - lo
        if halved and lo_bytes > 0:
            t = math.log(budget / lo_bytes) / math.log(hi_bytes / lo_bytes)
            mid = lo + round(min(max(t, 0.125), 0.875) * width)
        else:
            mid = (lo + hi) // 2
        data = _encode_groups(codec, an, mid, keep)
        if len(data) <= budget:
            lo, lo_bytes, best = mid, len(data), data
        else:
            hi, hi_bytes = mid, len(data)
        halved = hi - lo <= width // 2
    return best


def _encode_groups(codec: Codec, an: Analysis, rate_q: int, keep: int) -> bytes:
    data = codec.encode_analysis(an, rate_q)
    return data if keep == codec.n_groups else Container.parse(data).truncated(keep).to_bytes()
