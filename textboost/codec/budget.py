"""Meeting a byte budget with real bytes: rate bisection, then smaller scales, then groups.

Every candidate is a whole `.tbx` file, text section included, so whatever the sender
carries beside the image (the spotted words) is paid for inside the budget. The
downscale ladder is in eighths of a side (the container's scale byte); the baselines'
search in ``textboost.eval.budget`` walks the same idea with float divisors because their
files carry no scale field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textboost.codec.container import Container
from textboost.codec.exact import RATE_MAX
from textboost.codec.image import psnr_db

if TYPE_CHECKING:
    from textboost.codec.api import Analysis, Codec

__all__ = ["BUDGET_SCALES", "BudgetError", "fit_budget"]

# Downscale divisors (eighths) tried, in order, when a budget is below the full-size
# lowest rate: 1, 1.25, 1.5, 2, 2.5, 3, 4 and 6 times smaller a side.
BUDGET_SCALES = (8, 10, 12, 16, 20, 24, 32, 48)
SEARCH_BELOW_RATE = RATE_MAX // 2  # below this rate, smaller scales are tried too
SEARCH_SCALES = 3  # at most this many smaller scales decoded and compared
RATE_RESOLUTION = 64  # 1/1024 of the range: finer steps change a handful of bytes


class BudgetError(ValueError):
    """No stream of this model fits the requested byte budget."""


def fit_budget(codec: Codec, an: Analysis, budget: int, search: bool = True) -> bytes:
    """The best stream of an analysed image within ``budget`` bytes (g_a already ran).

    The rate is bisected on real encodings. When even the lowest rate does not fit, the
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
    stream of ``keep`` groups, already coded and known to fit."""
    best, lo, hi = floor, 0, RATE_MAX  # invariant: lo fits
    top = _encode_groups(codec, an, hi, keep)
    if len(top) <= budget:
        return top
    while hi - lo > RATE_RESOLUTION:
        mid = (lo + hi) // 2
        data = _encode_groups(codec, an, mid, keep)
        if len(data) <= budget:
            lo, best = mid, data
        else:
            hi = mid
    return best


def _encode_groups(codec: Codec, an: Analysis, rate_q: int, keep: int) -> bytes:
    data = codec.encode_analysis(an, rate_q)
    return data if keep == codec.n_groups else Container.parse(data).truncated(keep).to_bytes()
