"""The receiver's guidance (paper §4.1): carried words drawn where they stood, bounded.

API (torch-free, numpy and Pillow; what the fusion block and the evaluation consume)::

    g = render_words(words, width, height)        # -> Guidance, never raises
    g.map                    # (H, W) float32 in [0, 1]: glyph coverage, max over words
    g.words                  # list[RenderedWord], one per word drawn:
        .index               #   the word's position in ``words``
        .text, .score        #   the string drawn (cleaned) and the spotter's confidence
        .style               #   its Style (None: the version-0 rendering)
        .x0, .y0             #   where the patches sit in the image (top-left pixel)
        .mask                #   (h, w) float32 glyph coverage in [0, 1]
        .region              #   (h, w) float32 coverage of the word's rectangle
        .dark                #   polarity: True dark on light, False light on dark, None unknown
        .colours             #   (fg, bg) 8-bit RGB from the sender, or None
    g.dropped                # list[(index, reason)]: words not drawn, for the decoder's log
    g.region_map()           # (H, W) float32: the rectangles drawn, max over words
    render_guidance(words, width, height)        # == render_words(...).map

Two renderings. A word with a :class:`~textboost.text.style.Style` (chosen by the sender
on the original pixels, ``textboost.text.match``) is drawn at its own size: the string
in the style's face at about four times the ink box's height, cropped to its ink, mapped
onto the style's ink box by exact area resampling (two small matrix products), then, for
a word at an angle, turned into the image by bilinear sampling. A word without a style
(every word of a version-0 stream) is drawn exactly as before: DejaVu Sans Bold at 64 px,
its ink box the rectangle less 12 % of its height, 4×4 supersampled.

Bounds (a text section is input from the air; a 690-byte stream once cost 159 s and
3 GB): a word's string is cleaned of control, line- and paragraph-separator characters
(dropped when nothing printable is left), a word whose rectangle exceeds
``MAX_WORD_PIXELS`` or ``MAX_CHAR_PIXELS`` per glyph is dropped, and words are drawn
smallest first until ``MAX_RENDER_PIXELS`` of patches per image; a failure inside the
font engine drops that word. Every drop carries a reason; nothing raises.
"""

from __future__ import annotations

import functools
import math
import unicodedata
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from textboost.text.style import FONT_DIR, Style, font, ink_box
from textboost.text.words import Word, oriented_rect

__all__ = [
    "FONT_PATH",
    "MAX_CHAR_PIXELS",
    "MAX_RENDER_PIXELS",
    "MAX_WORD_PIXELS",
    "Guidance",
    "RenderedWord",
    "TextWarning",
    "clean_text",
    "frame_mask",
    "glyph_image",
    "render_guidance",
    "render_words",
    "resample_matrix",
]

FONT_PATH = FONT_DIR / "DejaVuSans-Bold.ttf"
RENDER_PX = 64  # version-0 glyphs are drawn at this size, then resampled to the word's box
MIN_SIDE = 1.0  # px: rectangles thinner than this are drawn one pixel thick
# PP-OCR's boxes are its text kernels grown by a margin (unclip ratio 1.6): the ink
# fills the box less this inset, a share of the box height on every side (version 0).
INSET = 0.12
SUPERSAMPLE = 4  # styled glyphs are drawn at this many times the ink box's height
MAX_GLYPH_PX = 256  # … but never taller than this
MAX_WORD_PIXELS = 1 << 19  # a word's rectangle: at most 0.5 MP
MAX_CHAR_PIXELS = 1 << 16  # … and at most 256² px per glyph
MAX_RENDER_PIXELS = 1 << 21  # patches drawn per image: at most 2 MP in all
V0_ROWS = 32  # version-0 words are supersampled this many output rows at a time


class TextWarning(UserWarning):
    """A carried word was not drawn (or the text section was unreadable); the picture is
    decoded all the same. ``python -m textboost decode`` prints these on stderr."""


@dataclass
class RenderedWord:
    """One drawn word: its patches and what the sender said about it."""

    index: int
    text: str
    score: float
    style: Style | None
    x0: int
    y0: int
    mask: np.ndarray
    region: np.ndarray

    @property
    def dark(self) -> bool | None:
        return None if self.style is None else self.style.dark

    @property
    def colours(self) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
        return None if self.style is None else self.style.rgb()


@dataclass
class Guidance:
    """The guidance map, the words drawn into it and the words dropped (with reasons)."""

    map: np.ndarray
    words: list[RenderedWord] = field(default_factory=list)
    dropped: list[tuple[int, str]] = field(default_factory=list)
    cleaned: list[tuple[int, int]] = field(default_factory=list)  # (index, characters removed)

    def region_map(self, confidence: bool = False) -> np.ndarray:
        """(H, W) float32: every drawn word's rectangle (weighted by its spotter
        confidence with ``confidence``), max over words."""
        out = np.zeros_like(self.map)
        for w in self.words:
            h, wd = w.region.shape
            view = out[w.y0 : w.y0 + h, w.x0 : w.x0 + wd]
            np.maximum(view, w.region * (w.score if confidence else 1.0), out=view)
        return out

    def restored_mask(self) -> np.ndarray:
        """(H, W) uint8 for the operator: 0 where the picture is the codec's own, and
        inside each drawn word's rectangle its spotter confidence, 1..255 (255 = 1.0)."""
        inside = self.region_map() >= 0.5
        conf = self.region_map(confidence=True)
        return np.where(inside, np.clip(np.round(conf * 255), 1, 255), 0).astype(np.uint8)

    def notes(self) -> list[str]:
        """One line per word not drawn (``word 3 dropped: <reason>``) or drawn without
        characters a line cannot hold (``word 2 drawn without 1 control character``)."""
        out = [f"word {i} dropped: {why}" for i, why in self.dropped]
        out += [
            f"word {i} drawn without {n} control or separator character{'s' * (n > 1)}"
            for i, n in self.cleaned
        ]
        return out


def render_guidance(words: list[Word], width: int, height: int) -> np.ndarray:
    """(height, width) float32 in [0, 1]: every word's string in its rectangle, white on black."""
    return render_words(words, width, height).map


def clean_text(text: str) -> str:
    """The string without what a font engine cannot lay out on one line: control
    characters, line and paragraph separators, surrogates, noncharacters."""
    return "".join(
        c
        for c in text
        if unicodedata.category(c) not in ("Cc", "Zl", "Zp", "Cs")
        and not (0xFDD0 <= ord(c) <= 0xFDEF or ord(c) & 0xFFFE == 0xFFFE)
    )


def render_words(words: list[Word], width: int, height: int) -> Guidance:
    """Draw ``words`` into a ``width``×``height`` guidance map, within the bounds above."""
    out = Guidance(np.zeros((height, width), dtype=np.float32))
    plans = []
    for i, w in enumerate(words):
        text = clean_text(w.text)
        if not text.strip():
            out.dropped.append((i, "no printable characters"))
            continue
        if len(text) != len(w.text):
            out.cleaned.append((i, len(w.text) - len(text)))
        cx, cy, rw, rh, angle = oriented_rect(w.quad)
        if not all(map(math.isfinite, (cx, cy, rw, rh, angle))):
            out.dropped.append((i, "rectangle not finite"))
            continue
        area = rw * rh
        if area > MAX_WORD_PIXELS:
            out.dropped.append((i, f"rectangle of {area:.0f} px > {MAX_WORD_PIXELS} px"))
            continue
        if area > MAX_CHAR_PIXELS * len(text):
            out.dropped.append((i, f"{area / len(text):.0f} px a glyph > {MAX_CHAR_PIXELS} px"))
            continue
        box = _patch_box((cx, cy, rw, rh, angle), width, height)
        plans.append((box[2] * box[3], i, w, text, (cx, cy, rw, rh, angle), box))
    budget = MAX_RENDER_PIXELS
    for pixels, i, w, text, rect, box in sorted(plans, key=lambda p: (p[0], p[1])):
        if pixels == 0:
            out.dropped.append((i, "outside the image"))
            continue
        if pixels > budget:
            out.dropped.append((i, f"past the {MAX_RENDER_PIXELS}-px rendering budget"))
            continue
        budget -= pixels
        try:
            drawn = _draw(text, rect, box, w.style)
        except (OSError, ValueError, RuntimeError, MemoryError) as e:
            out.dropped.append((i, f"font engine: {type(e).__name__}: {e}"))
            continue
        if drawn is None:
            out.dropped.append((i, "no ink"))
            continue
        mask, region = drawn
        x0, y0, pw, ph = box
        out.words.append(RenderedWord(i, text, float(w.score), w.style, x0, y0, mask, region))
        view = out.map[y0 : y0 + ph, x0 : x0 + pw]
        np.maximum(view, mask, out=view)
    out.words.sort(key=lambda r: r.index)
    out.dropped.sort()
    return out


def _patch_box(rect, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, w, h) of the pixels a rotated rectangle can touch, clipped to the image."""
    cx, cy, rw, rh, a = rect
    ca, sa = abs(math.cos(a)), abs(math.sin(a))
    hx = 0.5 * (rw * ca + rh * sa) + 1
    hy = 0.5 * (rw * sa + rh * ca) + 1
    x0, x1 = max(0, math.floor(cx - hx)), min(width, math.ceil(cx + hx))
    y0, y1 = max(0, math.floor(cy - hy)), min(height, math.ceil(cy + hy))
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def _draw(text: str, rect, box, style: Style | None):
    if style is None:
        return _draw_v0(text, rect, box)
    cx, cy, rw, rh, a = rect
    x0, y0, pw, ph = box
    ix0, iy0, ix1, iy1 = ink_box(style, rw, rh)
    glyphs = glyph_image(style.face, text, rh, rw)
    if glyphs is None:
        return None
    ox, oy = cx - rw / 2, cy - rh / 2  # the rectangle's top-left corner, unrotated
    if abs(math.sin(a)) < 1e-9 and math.cos(a) > 0:  # upright: straight onto the pixels
        mask = frame_mask(
            glyphs, (ix0 + ox - x0, iy0 + oy - y0, ix1 + ox - x0, iy1 + oy - y0), (ph, pw)
        )
        region = frame_mask(
            np.ones((1, 1), np.float32), (ox - x0, oy - y0, ox + rw - x0, oy + rh - y0), (ph, pw)
        )
        return mask, region
    # At an angle: draw in the rectangle's own frame (one pixel a unit), then sample.
    fh, fw = math.ceil(rh) + 2, math.ceil(rw) + 2
    frame = frame_mask(glyphs, (ix0 + 1, iy0 + 1, ix1 + 1, iy1 + 1), (fh, fw))
    u, v = _frame_coords(rect, box)
    mask = _bilinear(frame, u + 1, v + 1)
    region = ((u >= 0) & (u <= rw) & (v >= 0) & (v <= rh)).astype(np.float32)
    return mask, region


def _frame_coords(rect, box) -> tuple[np.ndarray, np.ndarray]:
    """(u, v): each patch pixel centre in the rectangle's frame (origin at its corner)."""
    cx, cy, rw, rh, a = rect
    x0, y0, pw, ph = box
    ca, sa = math.cos(a), math.sin(a)
    dx = (np.arange(x0, x0 + pw, dtype=np.float64) + 0.5 - cx)[None, :]
    dy = (np.arange(y0, y0 + ph, dtype=np.float64) + 0.5 - cy)[:, None]
    return dx * ca + dy * sa + rw / 2, -dx * sa + dy * ca + rh / 2


def _bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``img`` sampled at pixel-centre coordinates (u, v), zero outside."""
    h, w = img.shape
    pad = np.pad(img, 1)
    x, y = u - 0.5 + 1, v - 0.5 + 1  # into the padded image's index space
    x = np.clip(x, 0, w + 1 - 1e-6)
    y = np.clip(y, 0, h + 1 - 1e-6)
    xi, yi = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = (x - xi).astype(np.float32), (y - yi).astype(np.float32)
    xj, yj = np.minimum(xi + 1, w + 1), np.minimum(yi + 1, h + 1)
    top = pad[yi, xi] * (1 - fx) + pad[yi, xj] * fx
    bot = pad[yj, xi] * (1 - fx) + pad[yj, xj] * fx
    return (top * (1 - fy) + bot * fy).astype(np.float32)


@functools.lru_cache(maxsize=512)
def _glyphs_cached(face: int, text: str, size: int) -> np.ndarray | None:
    f = font(face, size)
    left, top, right, bottom = f.getbbox(text)
    if right <= left or bottom <= top:
        return None
    im = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(im).text((-left, -top), text, fill=255, font=f)
    g = np.asarray(im, dtype=np.float32) / 255.0
    if not g.any():
        return None
    ys, xs = np.nonzero(g)
    g = g[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    g.setflags(write=False)
    return g


def glyph_image(
    face: int, text: str, height: float, width: float, supersample: float = SUPERSAMPLE
) -> np.ndarray | None:
    """The string in ``face`` cropped to its ink (float32 0..1, read-only), drawn for a
    ``width``×``height`` px rectangle: at about ``supersample`` times its height (or its
    width for a long string), capped at ``MAX_GLYPH_PX``; None when it has no ink. The
    size depends on the rectangle alone, so every style of one word shares one drawing."""
    per_char = supersample * width / (0.5 * max(1, len(text)))
    size = int(min(MAX_GLYPH_PX, max(8, round(min(supersample * height, per_char)))))
    return _glyphs_cached(face, text, size)


def resample_matrix(n_out: int, lo: float, hi: float, n_in: int) -> np.ndarray:
    """(n_out, n_in): output pixel k's coverage by input sample j when the n_in samples
    span [lo, hi] in output coordinates (exact box overlap)."""
    edges = lo + (hi - lo) * np.arange(n_in + 1, dtype=np.float64) / n_in
    k = np.arange(n_out, dtype=np.float64)[:, None]
    overlap = np.minimum(edges[None, 1:], k + 1) - np.maximum(edges[None, :-1], k)
    return np.clip(overlap, 0.0, None).astype(np.float32)


def frame_mask(
    glyphs: np.ndarray, ink: tuple[float, float, float, float], shape: tuple[int, int]
) -> np.ndarray:
    """Glyph coverage on a pixel grid of ``shape`` (h, w): ``glyphs`` stretched onto the
    box ``ink`` = (x0, y0, x1, y1) in that grid's coordinates, exact area resampling."""
    gh, gw = glyphs.shape
    ry = resample_matrix(shape[0], ink[1], ink[3], gh)
    rx = resample_matrix(shape[1], ink[0], ink[2], gw)
    return np.clip((ry @ glyphs) @ rx.T, 0.0, 1.0).astype(np.float32)


# -- version 0 -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _font_v0() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_PATH), RENDER_PX)


@functools.lru_cache(maxsize=64)
def _glyphs_v0(text: str) -> np.ndarray:
    """The string drawn horizontally at RENDER_PX, cropped to its ink box (float32 0..1)."""
    font_ = _font_v0()
    left, top, right, bottom = font_.getbbox(text)
    im = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(im).text((-left, -top), text, fill=255, font=font_)
    return np.asarray(im, dtype=np.float32) / 255.0


def _draw_v0(text: str, rect, box):
    cx, cy, rw, rh, angle = rect
    pad = INSET * rh
    rw, rh = max(rw - 2 * pad, MIN_SIDE), max(rh - 2 * pad, MIN_SIDE)
    glyphs = _glyphs_v0(text)
    if not glyphs.any():
        return None
    gh, gw = glyphs.shape
    # Inverse map: output pixel (x, y) → glyph canvas (u, v). The box's axes are
    # (cos a, sin a) along the text and (-sin a, cos a) across it.
    ca, sa = math.cos(angle), math.sin(angle)
    sx, sy = gw / rw, gh / rh
    x0, y0, pw, ph = box
    # Supersample 4×4 per output pixel so thin strokes at small sizes keep their weight,
    # a band of rows at a time so memory stays bounded.
    ss = 4
    offs = (np.arange(ss) + 0.5) / ss
    xs = (np.arange(x0, x0 + pw)[:, None] + offs[None, :]).ravel()
    dx = xs[None, :] - cx
    mask = np.empty((ph, pw), np.float32)
    for r0 in range(0, ph, V0_ROWS):
        r1 = min(ph, r0 + V0_ROWS)
        ys = (np.arange(y0 + r0, y0 + r1)[:, None] + offs[None, :]).ravel()
        dy = ys[:, None] - cy
        u = (dx * ca + dy * sa) * sx + gw / 2
        v = (-dx * sa + dy * ca) * sy + gh / 2
        inside = (u >= 0) & (u < gw) & (v >= 0) & (v < gh)
        vals = np.where(
            inside,
            glyphs[np.clip(v, 0, gh - 1).astype(np.int64), np.clip(u, 0, gw - 1).astype(np.int64)],
            0.0,
        )
        mask[r0:r1] = vals.reshape(r1 - r0, ss, pw, ss).mean(axis=(1, 3))
    u, v = _frame_coords(rect, box)
    region = ((u >= 0) & (u <= rect[2]) & (v >= 0) & (v <= rect[3])).astype(np.float32)
    return mask, region
