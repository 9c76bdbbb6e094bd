"""Meeting a byte budget with real bytes: rate search, then smaller scales, then groups.

Every candidate is a whole `.tbx` file, text section included, so whatever the sender
carries beside the image (the spotted words) is paid for inside the budget. The
downscale ladder is in eighths of a side (the container's scale byte); the baselines'
search in ``textboost.eval.budget`` walks the same idea with float divisors because their
files carry no scale field.

Where the time goes (a 12 MP frame at 1.5 kB, benchmarks/large_frames.py): g_a at each
scale tried, the encodes of the rate search and the decodes that compare scales. So the
search starts below a scale that could only be coded near rate 0 (``TIGHT_START``) and
comes back up only if its start wins; a scale whose rate-0 stream cannot fit, judged from
the bytes of a larger scale already coded, is skipped without running g_a; the rate
search stops within ``CLOSE_ENOUGH`` of the budget; smaller scales are resampled from the
coded image, not the source; and candidates are compared at a coded size, never at 12 MP.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from textboost.bitstream.container import FULL_SCALE, Container, coded_size
from textboost.codec.estimate import RateModel, code_and_model
from textboost.codec.exact import RATE_MAX
from textboost.codec.image import psnr_db, resize

if TYPE_CHECKING:
    from textboost.codec.analysis import Analysis, LatentCodec

__all__ = [
    "BUDGET_SCALES",
    "CLOSE_ENOUGH",
    "MAX_CODED_PIXELS",
    "RATE_RESOLUTION",
    "BudgetError",
    "BudgetSearch",
    "Progress",
    "SearchStep",
    "chosen_scale",
    "first_scale",
    "fit_budget",
    "ranked_scales",
    "rival_scale",
    "start_scale",
]

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
# Below this rate smaller scales are tried too. Each scale's curve is steep at its lowest
# rates and flat at its highest, so a smaller image at a higher rate wins up to ≈ 0.09
# bpp on Kodak (docs/eval.md, "The lowest rates"). Below 3/4 of the range instead of 1/2:
# 24 Kodak images at 0.06 bpp 24.96 → 25.09 dB, at 0.08 25.66 → 25.68, 0.03 and 0.12
# unchanged; searching at every rate added ≈ 1 s per image at 0.12 bpp for +0.002 dB.
SEARCH_BELOW_RATE = RATE_MAX * 3 // 4
SEARCH_SCALES = 3  # at most this many smaller scales decoded and compared
RATE_RESOLUTION = 64  # 1/1024 of the range: finer steps change a handful of bytes
CLOSE_ENOUGH = 0.01  # a fitting stream within 1 % of the budget ends the rate search
# Above this budget per coded pixel the highest rate is coded first: it often fits (one
# encode instead of two), and when it does not the rate search needs it anyway.
TOP_FIRST_BPP = 0.05
# A scale whose rate-0 stream would take this share of the budget even at MIN_CODED_BPP
# could only be coded near rate 0, where the search goes on to smaller scales and nearly
# always keeps one: the search starts below it and comes back up only if its start wins.
TIGHT_START = 0.5
# predicted bytes and the scale from the budget; the same, the scale checked against its
# larger rival by two decodes; today's search
METHODS = ("predict", "check", "full")
# The predicted-bytes rate search (``method="predict"``, :meth:`BudgetSearch.fit_predicted`).
PREDICTED_CODINGS = 4  # real codings before handing over to bisection on real bytes
PREDICT_STEEPER = 1.25  # real log bytes move this much faster than one model predicts
SOLVE_STEPS = 6  # predictions per solve
SOLVE_TOLERANCE = 0.002  # a predicted rate within 0.2 % of its target bytes is taken
FIXED_BYTES = 60  # header and section framing, about (for the first guess only)
FIRST_RATE_BPP0 = 0.019  # bits per coded pixel at rate 0 (first guess)
FIRST_RATE_SLOPE = 2.35  # d ln(bytes) / d rate (first guess)
# Bits per coded pixel (framing excluded) at which a scale is coded at a middle rate,
# ≈ 0.675 by the first guess above: where the full search's winners lie (Kodak).
TARGET_CODED_BPP = 0.093
# The next larger scale, when its gap to TARGET_CODED_BPP (in ln bpp) is within this of
# the chosen one's, is coded too and the two decoded and compared (rival_scale). Kodak
# 768×512: 0.15 at 0.03 bpp, 0.45 at 0.06; at 0.12 the chosen scale is the full size.
RIVAL_MARGIN = 0.5


class BudgetError(ValueError):
    """No stream of this model fits the requested byte budget."""


@dataclass(frozen=True, slots=True)
class SearchStep:
    """One step of the budget search, for a progress display.

    ``kind``: ``"analyse"`` (g_a is about to run at ``coded_size``; ``"spot"``: the
    words are spotted first, the first step when they are carried), ``"encode"`` (a
    candidate was coded: ``rate`` in [0, 1], ``n_bytes``, ``groups`` kept when not all) or
    ``"compare"`` (a fitting candidate was decoded: ``psnr_db`` against the source at
    the first candidate's coded size) or ``"refine"`` (``effort`` > 0: latents are being
    refined at ``rate`` for ``iterations``, :mod:`textboost.codec.refine`).
    """

    kind: str
    coded_size: tuple[int, int]
    budget: int
    rate: float | None = None
    n_bytes: int | None = None
    groups: int | None = None
    psnr_db: float | None = None
    iterations: int | None = None

    @property
    def fits(self) -> bool | None:
        return None if self.n_bytes is None else self.n_bytes <= self.budget


Progress = Callable[[SearchStep], None]


def start_scale(
    width: int, height: int, budget: int | None = None, share: float = TIGHT_START
) -> int:
    """The first ladder scale worth analysing for a ``budget``-byte stream of this image.

    Coded pixels are capped at ``MAX_CODED_PIXELS`` (bounded memory), and scales whose
    lowest rate would need more than ``share`` of the budget (at ``MIN_CODED_BPP``, an
    under-estimate) are skipped, so a large frame under a small budget never runs g_a at
    full size. The search moves to smaller scales on real bytes from there, and back up
    (:func:`fit_budget`) to scales whose lowest rate could fit at all (``share=1``) when
    the start wins. Without a budget: the largest scale within the memory cap.
    """
    for scale in BUDGET_SCALES:
        w, h = coded_size(width, height, scale)
        floor = w * h * MIN_CODED_BPP / 8
        if w * h <= MAX_CODED_PIXELS and (budget is None or floor <= share * budget):
            return scale
    return BUDGET_SCALES[-1]


def ranked_scales(width: int, height: int, budget: int) -> list[tuple[float, int]]:
    """(gap, scale) of every ladder scale within the memory cap whose lowest rate could fit
    at all, nearest first: ``gap`` = |ln(bits per coded pixel / ``TARGET_CODED_BPP``)| for
    ``budget`` bytes less the framing."""
    loose = start_scale(width, height, budget, share=1.0)
    ranked = []
    for scale in BUDGET_SCALES:
        if scale < loose:
            continue
        w, h = coded_size(width, height, scale)
        bpp = 8 * max(budget - FIXED_BYTES, 1) / (w * h)
        ranked.append((abs(math.log(bpp / TARGET_CODED_BPP)), scale))
    return sorted(ranked)


def chosen_scale(width: int, height: int, budget: int) -> int:
    """The ladder scale at which ``budget`` bytes (less the framing) come nearest to
    ``TARGET_CODED_BPP`` bits per coded pixel, among those within the memory cap whose
    lowest rate could fit at all.

    Each scale's curve is steep at its lowest rates and flat at its highest, so the best
    of them at a budget is the one coded at a middle rate (docs/eval.md, "The lowest
    rates"), i.e. at about the same bits per coded pixel whatever the image: the full
    search's decodes agreed with this choice on 12 of 16 Kodak cases at 0.03 and 0.06
    bpp, −0.018 dB on average (benchmarks/budget_search.py).
    """
    return ranked_scales(width, height, budget)[0][1]


def rival_scale(width: int, height: int, budget: int) -> int | None:
    """The next larger ladder scale than :func:`chosen_scale` when its gap is within
    ``RIVAL_MARGIN`` of the chosen one's, else None: the budget per coded pixel alone
    picked too small an image for detailed ones (Kodak and scene text at 0.03 and 0.06
    bpp: −0.10 to −0.31 dB where the full search coded larger, −0.03 to −0.06 where
    it coded smaller; benchmarks/budget_search.py)."""
    ranked = ranked_scales(width, height, budget)
    best_gap, pick = ranked[0]
    larger = [(gap, sc) for gap, sc in ranked if sc < pick]
    if larger:
        gap, scale = max(larger, key=lambda t: t[1])
        if gap - best_gap <= RIVAL_MARGIN:
            return scale
    return None


def first_scale(width: int, height: int, budget: int, method: str = "predict") -> int:
    """The scale a budgeted encode analyses first: :func:`chosen_scale` for the
    predicted search, :func:`start_scale` for the full one."""
    if method != "full":
        return chosen_scale(width, height, budget)
    return start_scale(width, height, budget)


def first_rate(an: Analysis, budget: int) -> int:
    """A first guess of the rate that meets ``budget``, from the bytes per coded pixel
    (the shipped model's bytes grow ≈ e^(2.35·rate) from ≈ 0.019 bpp at rate 0, Kodak);
    the highest rate above ``TOP_FIRST_BPP``, as the full search codes it first."""
    w, h = coded_size(an.width, an.height, an.scale)
    if 8 * budget >= TOP_FIRST_BPP * w * h:
        return RATE_MAX
    bpp = 8 * max(budget - len(an.text) - FIXED_BYTES, 1) / (w * h)
    guess = math.log(bpp / FIRST_RATE_BPP0) / FIRST_RATE_SLOPE
    return round(min(max(guess, 0.0), 1.0) * RATE_MAX)


def _solve_rate(model: RateModel, target: float, lo: int, hi: int) -> int:
    """The rate strictly between a fitting ``lo`` and an overflowing ``hi`` (−1 and
    ``RATE_MAX`` + 1 when not known) where ``model`` predicts ``target`` bytes: regula
    falsi (Illinois) on log bytes from the model's anchor, a few predictions."""
    start = model.anchor_rate_q
    low, high = max(lo + 1, 0), min(hi - 1, RATE_MAX)
    f_start = math.log(model.predict(start) / target)
    if f_start < 0:
        a, fa, b = start, f_start, high
    else:
        a, b, fb = low, start, f_start
    if f_start < 0:
        fb = math.log(max(model.predict(b), 1.0) / target)
        if fb <= 0:
            return b
    else:
        fa = math.log(max(model.predict(a), 1.0) / target)
        if fa >= 0:
            return a
    side = 0
    for _ in range(SOLVE_STEPS):
        if b - a <= RATE_RESOLUTION // 2:
            break
        c = min(max(a + round(-fa * (b - a) / (fb - fa)), a + 1), b - 1)
        fc = math.log(max(model.predict(c), 1.0) / target)
        if abs(fc) < SOLVE_TOLERANCE:
            return c
        if fc < 0:
            a, fa = c, fc
            if side < 0:
                fb /= 2
            side = -1
        else:
            b, fb = c, fc
            if side > 0:
                fa /= 2
            side = 1
    return a


def fit_budget(
    codec: LatentCodec,
    an: Analysis,
    budget: int,
    search: bool = True,
    progress: Progress | None = None,
    method: str = "predict",
) -> bytes:
    """The best stream of an analysed image within ``budget`` bytes (g_a already ran).

    The rate is searched on real encodings. When even the lowest rate does not fit, the
    image is coded smaller: the first of ``BUDGET_SCALES`` whose lowest rate fits (scales
    that the rate-0 bytes of a larger one, scaled by pixels, already rule out are not
    analysed: bytes fall more slowly than pixels). Below the top quarter of the rate range
    (rate below ``SEARCH_BELOW_RATE``), a smaller image at a higher rate often looks
    better, so with ``search`` the sender decodes its candidate and the next smaller
    scales and keeps the best PSNR, stopping at the first that is worse (the baselines'
    search, on real bytes). Only when the smallest scale overflows too does the stream
    keep just the first k y groups (a valid, coarser stream; the rest are predicted).
    ``progress`` sees each step (:class:`SearchStep`). Raises :class:`BudgetError` when
    not even header, text and z fit.

    ``method``: ``"full"`` is the search above. ``"predict"`` (default) lands the rate
    with predicted bytes (:meth:`BudgetSearch.fit_predicted`: real codings still decide) and,
    with ``search``, codes the scale :func:`chosen_scale` names from the budget per
    coded pixel instead of decoding candidates (one g_a more only when the words'
    bytes, known after the analysis, move the choice); smaller scales follow only
    when even rate 0 overflows. ``"check"``: as ``"predict"``, and where the next larger
    scale is a near tie (:func:`rival_scale`) it is coded too and the two decoded and
    compared (Kodak ×12 at 0.03/0.06/0.12 bpp against the full search: mean −0.003 dB,
    worst −0.06, against −0.03 and −0.31 for ``"predict"``; about twice its codec time).
    """
    if method not in METHODS:
        raise ValueError(f"method {method!r}: expected one of {', '.join(METHODS)}")
    predict = method != "full"
    s = BudgetSearch(codec, budget, progress, predict=predict)
    saturated = False  # the chosen scale's highest rate fits with bytes to spare
    rival = None
    if predict and search:
        pick = chosen_scale(an.width, an.height, budget - len(an.text))
        if method == "check":
            rival = rival_scale(an.width, an.height, budget - len(an.text))
        if pick != an.scale:
            s.report("analyse", an, size=coded_size(an.width, an.height, pick))
            an = codec.analyse_smaller(an, pick)
        search, saturated = False, True  # no decodes: the scale is chosen
    scales = [sc for sc in BUDGET_SCALES if sc >= an.scale]
    over: tuple[int, int] | None = None  # (rate-0 bytes, coded pixels) of a scale too big
    for i, scale in enumerate(scales):
        if scale != an.scale:
            size = coded_size(an.width, an.height, scale)
            last = scale == scales[-1]
            if over is not None and not last and over[0] * size[0] * size[1] > budget * over[1]:
                continue  # its rate-0 stream cannot fit either: no g_a
            s.report("analyse", an, size=size)
            an = codec.analyse_smaller(an, scale)
        data, floor = s.fit_all_groups(an)
        if data is not None:
            if saturated and i == 0:
                filled = s.fill_larger(an, data)
                if rival is None or filled is not data:
                    return filled
                return s.search_larger(an, data, [rival])
            best = data
            if search and Container.parse(data).header.rate < SEARCH_BELOW_RATE:
                best = s.search_scales(an, data, scales[i + 1 :])
            if search and i == 0 and best is data:  # the start won: try larger scales
                loose = start_scale(an.width, an.height, budget, share=1.0)
                larger = [sc for sc in BUDGET_SCALES if loose <= sc < an.scale]
                best = s.search_larger(an, data, larger[::-1])
            return best
        w, h = coded_size(an.width, an.height, an.scale)
        over = (len(floor), w * h)
    keep, full = codec.n_groups, Container.parse(floor)  # the smallest scale's rate 0
    while len(data := full.truncated(keep).to_bytes()) > budget:
        if keep == 0:
            text = f", {len(an.text)} of them text" if an.text else ""
            raise BudgetError(
                f"budget {budget} bytes is below the smallest stream of this image "
                f"({len(data)} bytes{text}: header and z alone at 1/{an.scale / 8:g} size)"
            )
        keep -= 1
    s.report("encode", an, rate=0.0, n_bytes=len(data), groups=keep)
    return s.search_rate(an, keep, data)


class BudgetSearch:
    """The encodes and decodes of one budget search, each reported to ``progress``."""

    def __init__(
        self, codec: LatentCodec, budget: int, progress: Progress | None, predict: bool = False
    ) -> None:
        self.codec = codec
        self.budget = budget
        self.progress = progress
        self.predict = predict
        self.codings = 0  # real entropy codings so far (benchmarks/budget_search.py)
        self.decoded: dict[bytes, np.ndarray] = {}  # compared streams at their coded size

    def report(self, kind: str, an: Analysis, size: tuple[int, int] | None = None, **kw) -> None:
        if self.progress is not None:
            size = size or coded_size(an.width, an.height, an.scale)
            self.progress(SearchStep(kind, size, self.budget, **kw))

    def encode(self, an: Analysis, rate_q: int, keep: int) -> bytes:
        codec = self.codec
        data = codec.encode_analysis(an, rate_q)
        self.codings += 1
        cut = keep != codec.n_groups
        if cut:
            data = Container.parse(data).truncated(keep).to_bytes()
        self.report(
            "encode", an, rate=rate_q / RATE_MAX, n_bytes=len(data), groups=keep if cut else None
        )
        return data

    def fit_all_groups(self, an: Analysis) -> tuple[bytes | None, bytes]:
        """(the highest-rate stream of every y group within the budget, or None when
        rate 0 does not fit; the rate-0 stream, or the top one when that fitted first)."""
        if self.predict:
            return self.fit_predicted(an)
        n = self.codec.n_groups
        w, h = coded_size(an.width, an.height, an.scale)
        top = None
        if 8 * self.budget >= TOP_FIRST_BPP * w * h:
            top = self.encode(an, RATE_MAX, n)
            if len(top) <= self.budget:
                return top, top
        floor = self.encode(an, 0, n)
        if len(floor) > self.budget:
            return None, floor
        return self.search_rate(an, n, floor, top), floor

    def fit_predicted(self, an: Analysis) -> tuple[bytes | None, bytes]:
        """:meth:`fit_all_groups` with the rates chosen by predicted bytes.

        Each real coding yields the image's rate model (:mod:`textboost.codec.estimate`),
        anchored on its real bytes; the next rate is where that model meets the budget
        (aiming ``CLOSE_ENOUGH / 2`` under it), its slope corrected by how much faster the
        real bytes moved than the previous model said (``PREDICT_STEEPER`` at first:
        the contexts of another rate's ŷ predict better or worse than the anchor's).
        Stops as :meth:`search_rate` does (a fitting stream within ``CLOSE_ENOUGH``, or a
        bracket ``RATE_RESOLUTION`` wide), and hands over to it after
        ``PREDICTED_CODINGS`` codings. Rate 0 is coded only to confirm that nothing fits.
        """
        budget = self.budget
        close = budget - CLOSE_ENOUGH * budget
        aim = budget - CLOSE_ENOUGH * budget / 2
        lo, hi = -1, RATE_MAX + 1  # highest rate known to fit, lowest known to overflow
        best: bytes | None = None
        floor: bytes | None = None
        steeper = PREDICT_STEEPER
        rate, prev = first_rate(an, budget), None
        for _ in range(PREDICTED_CODINGS):
            data, model = code_and_model(self.codec, an, rate)
            self.codings += 1
            self.report("encode", an, rate=rate / RATE_MAX, n_bytes=len(data))
            n = len(data)
            if rate == 0:
                floor = data
            if n <= budget:
                lo, best = rate, data
            else:
                hi = rate
            if prev is not None:  # how much steeper the real bytes were than predicted
                _, p_bytes, p_model = prev
                said = math.log(max(p_model.predict(rate), 1.0) / p_bytes)
                if abs(said) > 1e-3:
                    steeper = min(max(math.log(n / p_bytes) / said, 0.5), 3.0)
            if lo == RATE_MAX or hi == 0 or hi - lo <= RATE_RESOLUTION:
                break
            if best is not None and len(best) >= close:
                break
            prev = (rate, n, model)
            rate = _solve_rate(model, n * (aim / n) ** (1 / steeper), lo, hi)
        else:
            if best is not None and hi <= RATE_MAX:  # hand over to the real-bytes search
                best = self.narrow(an, lo, best, hi)
        if best is None:
            if floor is None:
                floor = self.encode(an, 0, self.codec.n_groups)
            if len(floor) > budget:
                return None, floor
            best = self.narrow(an, 0, floor, hi) if hi <= RATE_MAX else floor
        return best, floor if floor is not None else best

    def fill_larger(self, an: Analysis, data: bytes) -> bytes:
        """``data``, or when its highest rate leaves more than ``CLOSE_ENOUGH`` of the
        budget unused, the stream of the nearest larger scale that fits (and so on up
        while the top rate still fits): an image that the chosen scale cannot spend the
        budget on is coded larger, as the full search's comparisons would."""
        loose = start_scale(an.width, an.height, self.budget, share=1.0)
        larger = [sc for sc in BUDGET_SCALES if loose <= sc < an.scale][::-1]
        close = self.budget - CLOSE_ENOUGH * self.budget
        for scale in larger:
            hd = Container.parse(data).header
            if hd.rate < RATE_MAX or len(data) >= close:
                break
            self.report("analyse", an, size=coded_size(an.width, an.height, scale))
            up = self.codec.analyse_smaller(an, scale)
            cand, _ = self.fit_all_groups(up)
            if cand is None:
                break
            data, an = cand, up
        return data

    def narrow(self, an: Analysis, lo: int, best: bytes, hi: int) -> bytes:
        """Bisect between a fitting rate ``lo`` (stream ``best``) and an overflowing ``hi``
        on real bytes, as :meth:`search_rate` stops."""
        close = self.budget - CLOSE_ENOUGH * self.budget
        while hi - lo > RATE_RESOLUTION and len(best) < close:
            mid = (lo + hi) // 2
            data = self.encode(an, mid, self.codec.n_groups)
            if len(data) <= self.budget:
                lo, best = mid, data
            else:
                hi = mid
        return best

    def search_rate(self, an: Analysis, keep: int, floor: bytes, top: bytes | None = None) -> bytes:
        """The highest rate whose stream of ``keep`` groups fits; ``floor`` is the rate-0
        stream of ``keep`` groups, already coded and known to fit (``top``, the rate-max
        one, when already coded).

        A safeguarded interpolation search: bytes grow roughly exponentially with the rate,
        so the next rate is interpolated on log bytes between the bracket's ends (kept at
        least 1/8 of the bracket inside it, and a plain bisection after a step that did not
        halve it). It stops when the bracket is ``RATE_RESOLUTION`` wide, as a bisection
        would, or when the fitting stream is within ``CLOSE_ENOUGH`` of the budget: 3–7
        encodes where a bisection takes 10.
        """
        budget = self.budget
        close = budget - CLOSE_ENOUGH * budget
        if len(floor) >= close:
            return floor
        best, lo, hi = floor, 0, RATE_MAX  # invariant: lo fits, hi does not
        top = top if top is not None else self.encode(an, hi, keep)
        if len(top) <= budget:
            return top
        lo_bytes, hi_bytes = len(floor), len(top)
        halved = True
        while hi - lo > RATE_RESOLUTION and len(best) < close:
            width = hi - lo
            if halved and lo_bytes > 0:
                t = math.log(budget / lo_bytes) / math.log(hi_bytes / lo_bytes)
                mid = lo + round(min(max(t, 0.125), 0.875) * width)
            else:
                mid = (lo + hi) // 2
            data = self.encode(an, mid, keep)
            if len(data) <= budget:
                lo, lo_bytes, best = mid, len(data), data
            else:
                hi, hi_bytes = mid, len(data)
            halved = hi - lo <= width // 2
        return best

    def search_scales(self, an: Analysis, data: bytes, smaller: list[int]) -> bytes:
        """``data`` or a stream of a smaller scale, whichever decodes with the best PSNR.

        Compared without the fusion block (the choice is the codec's, and the edge need
        not carry the receiver's post-filter), against the source at ``data``'s coded
        size: the detail above that resolution is missing from every candidate alike, so
        the ranking is the one at full size, without a 12 MP decode per candidate.
        """
        ref = _coded_source(an)
        best, best_psnr = data, self.compare(data, ref, an)
        for scale in smaller[:SEARCH_SCALES]:
            self.report("analyse", an, size=coded_size(an.width, an.height, scale))
            smaller_an = self.codec.analyse_smaller(an, scale)
            cand, _ = self.fit_all_groups(smaller_an)
            if cand is None:
                break
            p = self.compare(cand, ref, smaller_an)
            if p <= best_psnr:
                break
            best, best_psnr = cand, p
        return best

    def search_larger(self, an: Analysis, data: bytes, larger: list[int]) -> bytes:
        """``data`` or a stream of a larger scale (``larger``: nearest first), whichever
        decodes with the best PSNR, stopping at the first that is worse or does not fit.

        Each step compares at the larger candidate's coded size, the finer reference."""
        best, best_an = data, an
        for scale in larger[:SEARCH_SCALES]:
            self.report("analyse", an, size=coded_size(an.width, an.height, scale))
            up = self.codec.analyse_smaller(an, scale)  # resampled from the source
            cand, _ = self.fit_all_groups(up)
            if cand is None:
                break
            ref = _coded_source(up)
            if self.compare(cand, ref, up) <= self.compare(best, ref, best_an):
                break
            best, best_an = cand, up
        return best

    def compare(self, data: bytes, ref: np.ndarray, an: Analysis) -> float:
        if data not in self.decoded:
            self.decoded[data] = self.codec.decode_coded(data)[1]
        out = self.decoded[data]
        if out.shape != ref.shape:
            out = resize(out, ref.shape[1], ref.shape[0])
        p = psnr_db(out, ref)
        self.report("compare", an, psnr_db=p)
        return p


def _coded_source(an: Analysis) -> np.ndarray:
    """The source image at ``an``'s coded size (what g_a saw)."""
    if an.coded is not None:
        return an.coded
    if an.scale == FULL_SCALE:
        return an.image
    return resize(an.image, *coded_size(an.width, an.height, an.scale))
