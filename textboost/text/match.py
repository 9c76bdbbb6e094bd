"""The sender picks each word's :class:`Style` by analysis through synthesis (no torch).

The sender has the original pixels. For a carried word it cuts the word's rectangle
out of the original (rectified, at most ``WORK_PX`` pixels tall) and renders the string
with candidate styles through the receiver's own rasteriser
(:func:`textboost.text.render.frame_mask`), keeping the style whose coverage best fits the
original (``SCORES``): its correlation with the luminance (``ncc``, the sender's default;
the sign is the polarity), the same within the polarity of the Otsu class that covers less
of the rectangle (``ncc-ink``), or the soft IoU with one Otsu class (``iou``, the first).
The search is coarse to fine:

1. every face × a 3×3 grid of inset and stretch, both polarities (72 renders);
2. from the best two (face, polarity), coordinate descent over inset, stretch, dx, dy
   with steps 2 then 1, until nothing improves.

Optionally (``colours=True``) the glyph and background colours are the medians of the
original's pixels under and outside the chosen mask, 4 bits a channel.

The match score reported (:func:`glyph_iou`) is the IoU of the rendered mask (coverage
≥ 0.5) with the Otsu mask of the original inside the word's rectangle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from textboost.text.render import INSET, clean_text, glyph_image, resample_matrix
from textboost.text.style import (
    FACES,
    INSET_STEPS,
    SHIFT_STEP,
    STRETCH_BASE,
    STRETCH_STEP,
    Style,
    ink_box,
    ink_box_of,
    quantise_colour,
)
from textboost.text.words import Word, oriented_rect

__all__ = ["WORK_PX", "Match", "glyph_iou", "match_word", "match_words", "word_crop"]

WORK_PX = 20  # the rectangle's height in the matcher's working pixels (at most)
MATCH_SUPERSAMPLE = 2  # glyphs drawn at twice the working size (the receiver: 4×)
TOP_STARTS = 3  # seeds refined by descent
GRID_INSET, GRID_STRETCH = (2, 6), (6, 10)
# a border row (column) more than this share set is a rim or background, not glyphs (a
# letter's stem at either end of a word can fill most of a column: columns need more)
ROW_BAND, COL_BAND = 0.75, 0.95
LIMITS = {"inset": (0, 15), "stretch": (0, 15), "dx": (-8, 7), "dy": (-8, 7)}  # in order


@dataclass(frozen=True)
class Match:
    """The chosen style, its IoU, and that of the version-0 rendering (for reports)."""

    style: Style
    iou: float
    renders: int


def word_crop(img: np.ndarray, word: Word, work_px: int = WORK_PX):
    """The word's rectangle cut out of ``img`` (HxWx3 uint8), rectified: (crop HxWx3 float32,
    scale k = working pixels per image pixel), or None for a degenerate rectangle."""
    cx, cy, rw, rh, a = oriented_rect(word.quad)
    if not (rw >= 1 and rh >= 1 and all(map(math.isfinite, (cx, cy, rw, rh, a)))):
        return None
    k = min(1.0, work_px / rh)
    fh, fw = max(1, round(rh * k)), max(1, round(rw * k))
    if fh * fw > 64 * work_px * work_px:
        return None
    ss = 2 if k < 1 else 1  # average 2×2 samples a working pixel when shrinking
    offs = (np.arange(ss) + 0.5) / ss
    u = ((np.arange(fw)[:, None] + offs[None, :]).ravel()) * (rw / fw)
    v = ((np.arange(fh)[:, None] + offs[None, :]).ravel()) * (rh / fh)
    ca, sa = math.cos(a), math.sin(a)
    ox = cx - rw / 2 * ca + rh / 2 * sa
    oy = cy - rw / 2 * sa - rh / 2 * ca
    x = ox + u[None, :] * ca - v[:, None] * sa
    y = oy + u[None, :] * sa + v[:, None] * ca
    h, w = img.shape[:2]
    xf = np.clip(x - 0.5, 0, w - 1)
    yf = np.clip(y - 0.5, 0, h - 1)
    x0, y0 = np.floor(xf).astype(np.int64), np.floor(yf).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (xf - x0)[..., None], (yf - y0)[..., None]

    # gather the uint8 samples, then convert: not the whole image (a 12 MP frame is 144 MB
    # of float32 a word)
    def at(yy, xx):
        return img[yy, xx].astype(np.float32)

    s = (at(y0, x0) * (1 - fx) + at(y0, x1) * fx) * (1 - fy) + (
        at(y1, x0) * (1 - fx) + at(y1, x1) * fx
    ) * fy
    crop = s.reshape(fh, ss, fw, ss, 3).mean(axis=(1, 3))
    return crop.astype(np.float32), fw / rw, fh / rh


def otsu(gray: np.ndarray) -> float:
    """Otsu's threshold of a float image in [0, 255]."""
    hist = np.bincount(np.clip(gray, 0, 255).astype(np.int64).ravel(), minlength=256)
    p = hist / max(1, hist.sum())
    omega = np.cumsum(p)
    mu = np.cumsum(p * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * omega - mu) ** 2 / (omega * (1 - omega))
    between = np.nan_to_num(between)
    return float(np.argmax(between)) + 0.5


def _soft_iou(mask: np.ndarray, target: np.ndarray) -> float:
    """Σ min / Σ max of the coverage and the binary target: the search's objective,
    smoother than the binary IoU over steps of a fraction of a pixel."""
    m = np.minimum(mask, 1.0)
    union = float(np.maximum(m, target).sum())
    return float(np.minimum(m, target).sum()) / union if union else 0.0


# the search's objective (benchmarks/guidance_match.py --score): "iou", the soft IoU of the
# coverage with the Otsu class of the chosen polarity (the first objective); "ncc", the
# coverage's correlation with the luminance (the sender's default); "ncc-ink", the
# correlation within the polarity of the Otsu class that covers less of the rectangle (ink
# is rarely most of it; the correlation alone lets a fat light rendering of dark text
# match the ground between thin strokes)
SCORES = ("iou", "ncc", "ncc-ink")
INK_TIE = 0.05  # an Otsu class within this of half the rectangle: both polarities searched


def _ncc(mask: np.ndarray, gray: np.ndarray, gnorm: float) -> float:
    """Normalised correlation of the coverage with the crop's (zero-mean) luminance:
    positive for light glyphs, negative for dark ones, and, unlike an IoU with one Otsu
    class, not drawn to whichever class covers more of the rectangle."""
    m = np.minimum(mask, 1.0)
    m = m - m.mean()
    den = float(np.sqrt((m * m).sum())) * gnorm
    return float((m * gray).sum()) / den if den > 0 else 0.0


def _iou(mask: np.ndarray, target: np.ndarray) -> float:
    m = mask >= 0.5
    union = np.count_nonzero(m | target)
    return np.count_nonzero(m & target) / union if union else 0.0


class _Renderer:
    """One word's candidate masks on the working grid. The face's drawing and the
    vertical half of the resampling (which depends on inset and dy only) are reused
    across candidates: most steps of the search change one horizontal parameter."""

    def __init__(self, text: str, rw: float, rh: float, kx: float, ky: float, shape) -> None:
        self.text, self.rw, self.rh, self.kx, self.ky, self.shape = text, rw, rh, kx, ky, shape
        self._rows: dict[tuple, np.ndarray] = {}

    def box(self, face: int, box) -> np.ndarray | None:
        glyphs = glyph_image(face, self.text, *self.shape, supersample=MATCH_SUPERSAMPLE)
        if glyphs is None:
            return None
        x0, y0, x1, y1 = box[0] * self.kx, box[1] * self.ky, box[2] * self.kx, box[3] * self.ky
        key = (face, y0, y1)
        rows = self._rows.get(key)
        if rows is None:
            rows = self._rows[key] = (
                resample_matrix(self.shape[0], y0, y1, glyphs.shape[0]) @ glyphs
            )
        rx = resample_matrix(self.shape[1], x0, x1, glyphs.shape[1])
        return rows @ rx.T

    def style(self, st: Style) -> np.ndarray | None:
        return self.box(st.face, ink_box(st, self.rw, self.rh))


def glyph_iou(img: np.ndarray, word: Word, style: Style | None) -> float:
    """IoU of the word rendered with ``style`` against the Otsu mask of the original in
    the word's rectangle. ``style`` None: the version-0 rendering's geometry (DejaVu Sans
    Bold filling the rectangle less 12 % of its height a side), with whichever polarity
    fits better."""
    cut = word_crop(img, word)
    text = clean_text(word.text)
    if cut is None or not text.strip():
        return 0.0
    crop, kx, ky = cut
    _, _, rw, rh, _ = oriented_rect(word.quad)
    dark = _otsu_mask(crop)
    r = _Renderer(text, rw, rh, kx, ky, crop.shape[:2])
    if style is None:
        pad = INSET * rh
        m = r.box(0, (pad, pad, max(pad + 1e-3, rw - pad), max(pad + 1e-3, rh - pad)))
        return 0.0 if m is None else max(_iou(m, dark), _iou(m, ~dark))
    m = r.style(style)
    return 0.0 if m is None else _iou(m, dark if style.dark else ~dark)


def _luma(crop: np.ndarray) -> np.ndarray:
    return crop @ np.array([0.299, 0.587, 0.114], np.float32)


def _otsu_mask(crop: np.ndarray) -> np.ndarray:
    gray = _luma(crop)
    return gray < otsu(gray)


def _ink_extent(text_px: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) of the glyph pixels on the working grid: bands along the border
    that are mostly set (a plate's rim, the background of the other polarity) are cut
    off, then the set pixels' 1st..99th percentile; None when too few are left."""
    h, w = text_px.shape
    rows = text_px.mean(axis=1)
    top, bottom = 0, h
    while top < bottom and rows[top] > ROW_BAND:
        top += 1
    while bottom > top and rows[bottom - 1] > ROW_BAND:
        bottom -= 1
    cols = text_px[top:bottom].mean(axis=0) if bottom > top else np.zeros(w)
    left, right = 0, w
    while left < right and cols[left] > COL_BAND:
        left += 1
    while right > left and cols[right - 1] > COL_BAND:
        right -= 1
    ys, xs = np.nonzero(text_px[top:bottom, left:right])
    if len(xs) < 4:
        return None
    x0, x1 = np.percentile(xs, (1, 99))
    y0, y1 = np.percentile(ys, (1, 99))
    return left + float(x0), top + float(y0), left + float(x1) + 1, top + float(y1) + 1


def _geometry(extent, rw: float, rh: float) -> tuple[int, int, int, int]:
    """(inset, stretch, dx, dy) of the ink box nearest ``extent`` (rectangle units)."""
    x0, y0, x1, y1 = extent
    m = max(0.0, (rh - (y1 - y0)) / 2)
    inset = int(np.clip(round(m / rh * INSET_STEPS), 0, 15))
    m = inset * rh / INSET_STEPS
    factor = (x1 - x0) / max(1e-3, rw - 2 * m)
    step = SHIFT_STEP * rh
    return (
        inset,
        int(np.clip(round((factor - STRETCH_BASE) / STRETCH_STEP), 0, 15)),
        int(np.clip(round(((x0 + x1) / 2 - rw / 2) / step), -8, 7)),
        int(np.clip(round(((y0 + y1) / 2 - rh / 2) / step), -8, 7)),
    )


def match_word(
    img: np.ndarray, word: Word, colours: bool = False, score: str = "ncc"
) -> Match | None:
    """The style that best reproduces ``word``'s glyphs in ``img`` (HxWx3 uint8), or None
    when the word cannot be measured (degenerate or huge rectangle, no printable text).
    ``score``: the search's objective (``SCORES``)."""
    if score not in SCORES:
        raise ValueError(f"score {score!r}: expected one of {', '.join(SCORES)}")
    cut = word_crop(img, word)
    text = clean_text(word.text)
    if cut is None or not text.strip():
        return None
    crop, kx, ky = cut
    _, _, rw, rh, _ = oriented_rect(word.quad)
    shape = crop.shape[:2]
    dark = _otsu_mask(crop)
    targets = {True: dark, False: ~dark}
    weights = {k: v.astype(np.float32) for k, v in targets.items()}
    r = _Renderer(text, rw, rh, kx, ky, shape)
    # candidates as (dark, face, inset, stretch, dx, dy): cheaper to build than Styles
    cache: dict[tuple, float] = {}

    polarities: tuple[bool, ...] = (True, False)
    dark_share = float(dark.mean())
    if score == "ncc-ink" and abs(dark_share - 0.5) > INK_TIE:
        polarities = (dark_share < 0.5,)
    if score != "iou":
        gray = _luma(crop)
        gray = gray - gray.mean()
        gnorm = float(np.sqrt((gray * gray).sum()))

    def fit(c: tuple) -> float:
        if c not in cache:  # one render scores both polarities
            m = r.box(c[1], ink_box_of(*c[2:], rw, rh))
            if score != "iou":
                ncc = -1.0 if m is None else _ncc(m, gray, gnorm)
                cache[(True, *c[1:])], cache[(False, *c[1:])] = -ncc, ncc
            else:
                for d in (True, False):
                    cache[(d, *c[1:])] = -1.0 if m is None else _soft_iou(m, weights[d])
        return cache[c]

    faces = [f for f, face in enumerate(FACES) if face.draws(text)]
    seeds = []
    for polarity in polarities:
        ext = _ink_extent(targets[polarity])
        if ext is None:
            continue
        ext = (ext[0] / kx, ext[1] / ky, ext[2] / kx, ext[3] / ky)
        seeds += [(polarity, f, *_geometry(ext, rw, rh)) for f in faces]
    # and a coarse grid, for words whose extent the profile misjudges (rims, clutter)
    seeds += [
        (d, f, i, s, 0, 0)
        for f in faces
        for i in GRID_INSET
        for s in GRID_STRETCH
        for d in polarities
    ]
    starts = sorted(seeds, key=lambda c: -fit(c))[:TOP_STARTS]
    best = starts[0]
    for c in starts:
        improved = True
        while improved:
            improved = False
            for k, (lo, hi) in enumerate(LIMITS.values(), start=2):
                for delta in (-1, 1):
                    if lo <= c[k] + delta <= hi:
                        cand = (*c[:k], c[k] + delta, *c[k + 1 :])
                        if fit(cand) > fit(c) + 1e-9:
                            c, improved = cand, True
        if fit(c) > fit(best):
            best = c
    best = Style(best[1], best[0], *best[2:])
    m = r.style(best)
    iou = 0.0 if m is None else _iou(m, targets[best.dark])
    if colours and m is not None:
        ink = m >= 0.5
        if ink.any() and (~ink).any():
            fg = quantise_colour(np.median(crop[ink], axis=0))
            bg = quantise_colour(np.median(crop[~ink], axis=0))
            best = replace(best, fg=fg, bg=bg)
    return Match(best, iou, len(cache))


def match_words(
    img: np.ndarray, words: list[Word], colours: bool = False, score: str = "ncc"
) -> list[Word]:
    """``words`` with the style the matcher picks (unchanged where it cannot measure)."""
    out = []
    for w in words:
        m = match_word(img, w, colours, score)
        out.append(w if m is None else Word(w.quad, w.text, w.score, m.style))
    return out
