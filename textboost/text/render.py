"""The receiver's guidance map (paper §4.1): words drawn white on black where they stood.

Each word is drawn horizontally on its own canvas, with the font size fitted to its
oriented rectangle (the glyphs' ink box scaled to fill it, less an inset), then rotated back to the
word's angle and placed, all with Pillow and one font file shipped in the repository
(DejaVu Sans Bold, ``textboost/text/fonts``, licence beside it), so the map is the same
on every machine with the same Pillow/FreeType. No words → an all-zero map.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from textboost.text.words import Word, oriented_rect

__all__ = ["FONT_PATH", "render_guidance"]

FONT_PATH = Path(__file__).resolve().parent / "fonts" / "DejaVuSans-Bold.ttf"
RENDER_PX = 64  # glyphs are drawn at this size, then resampled to the word's box
MIN_SIDE = 1.0  # px: rectangles thinner than this are drawn one pixel thick
# PP-OCR's boxes are its text kernels grown by a margin (unclip ratio 1.6): the ink
# fills the box less this inset, a share of the box height on every side.
INSET = 0.12


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_PATH), RENDER_PX)


def render_guidance(words: list[Word], width: int, height: int) -> np.ndarray:
    """(height, width) float32 in [0, 1]: every word's string in its rectangle, white on black."""
    out = np.zeros((height, width), dtype=np.float32)
    for w in words:
        _draw_word(out, w)
    return out


def _glyphs(text: str) -> np.ndarray:
    """The string drawn horizontally at RENDER_PX, cropped to its ink (float32 0..1)."""
    font = _font()
    left, top, right, bottom = font.getbbox(text)
    im = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(im).text((-left, -top), text, fill=255, font=font)
    return np.asarray(im, dtype=np.float32) / 255.0


def _draw_word(out: np.ndarray, word: Word) -> None:
    cx, cy, rw, rh, angle = oriented_rect(word.quad)
    pad = INSET * rh
    rw, rh = max(rw - 2 * pad, MIN_SIDE), max(rh - 2 * pad, MIN_SIDE)
    glyphs = _glyphs(word.text)
    if not glyphs.any():
        return
    gh, gw = glyphs.shape
    # Inverse map: output pixel (x, y) → glyph canvas (u, v). The box's axes are
    # (cos a, sin a) along the text and (-sin a, cos a) across it.
    ca, sa = math.cos(angle), math.sin(angle)
    sx, sy = gw / rw, gh / rh
    half = 0.5 * math.hypot(rw, rh) + 1
    x0, x1 = max(0, int(cx - half)), min(out.shape[1], math.ceil(cx + half) + 1)
    y0, y1 = max(0, int(cy - half)), min(out.shape[0], math.ceil(cy + half) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    # Supersample 4×4 per output pixel so thin strokes at small sizes keep their weight.
    ss = 4
    offs = (np.arange(ss) + 0.5) / ss
    ys = (np.arange(y0, y1)[:, None] + offs[None, :]).ravel()
    xs = (np.arange(x0, x1)[:, None] + offs[None, :]).ravel()
    dx = xs[None, :] - cx
    dy = ys[:, None] - cy
    u = (dx * ca + dy * sa) * sx + gw / 2
    v = (-dx * sa + dy * ca) * sy + gh / 2
    inside = (u >= 0) & (u < gw) & (v >= 0) & (v < gh)
    vals = np.where(
        inside,
        glyphs[np.clip(v, 0, gh - 1).astype(np.int64), np.clip(u, 0, gw - 1).astype(np.int64)],
        0.0,
    )
    tile = vals.reshape(y1 - y0, ss, x1 - x0, ss).mean(axis=(1, 3)).astype(np.float32)
    np.maximum(out[y0:y1, x0:x1], tile, out=out[y0:y1, x0:x1])
