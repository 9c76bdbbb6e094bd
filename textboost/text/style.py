"""How a carried word should look: face, polarity, ink box and colours, in a few bytes.

The sender has the original pixels, so for each word it carries it can choose the
rendering that best reproduces the real glyphs (``textboost.text.match``) and send that
choice beside the string: a :class:`Style`. The receiver's renderer
(``textboost.text.render``) draws the string with it. A word without a style (every word
of a version-0 text section) is drawn as before: DejaVu Sans Bold, filling its rectangle
less a 12 % inset.

Every field is a small integer, as carried in the text section (version 1):

* ``face``: index into :data:`FACES`, the shipped open fonts (``textboost/text/fonts``,
  licences beside them): 3 bits.
* ``dark``: polarity, glyphs darker than their background (dark on light): 1 bit.
* ``inset``: the ink's margin above and below, ``inset / 40`` of the rectangle's height
  (0..15: 0 to 0.375): 4 bits.
* ``stretch``: the ink's width, ``0.6 + 0.05 · stretch`` of the rectangle's width less the
  same margin left and right (0..15: 0.6 to 1.35): 4 bits.
* ``dx``, ``dy``: the ink box's shift along and across the text, in 1/24 of the
  rectangle's height (-8..7 each): 4 bits each.
* ``fg``, ``bg``: optional glyph and background colours, 4 bits a channel (0..15 → ×17
  for 8 bits), both or neither: 24 bits.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from PIL import ImageFont

__all__ = [
    "FACES",
    "FONT_DIR",
    "INSET_STEPS",
    "SHIFT_STEP",
    "Face",
    "Style",
    "font",
    "ink_box",
    "ink_box_of",
    "quantise_colour",
]

FONT_DIR = Path(__file__).resolve().parent / "fonts"
INSET_STEPS = 40  # inset q → margin q/40 of the rectangle's height
SHIFT_STEP = 1 / 24  # dx, dy → shift of q/24 of the rectangle's height
STRETCH_BASE, STRETCH_STEP = 0.6, 0.05


@dataclass(frozen=True)
class Face:
    """One shipped font: its file, the variable-font weight to set (None: static), a label."""

    file: str
    label: str
    weight: int | None = None
    # the characters this face draws as themselves (None: any); the style search offers a
    # face only for strings within it (a 7-segment face draws R or K as other shapes)
    charset: str | None = None

    def draws(self, text: str) -> bool:
        return self.charset is None or all(c in self.charset for c in text)


# The order is the wire format: append, never reorder. 0 is the version-0 renderer's face.
FACES: tuple[Face, ...] = (
    Face("DejaVuSans-Bold.ttf", "DejaVu Sans Bold (humanist sans)"),
    Face("Barlow-SemiBold.ttf", "Barlow SemiBold (DIN-like, plates and signs)"),
    Face("Overpass-wght.ttf", "Overpass Bold (Highway Gothic-like)", 700),
    Face("BarlowCondensed-SemiBold.ttf", "Barlow Condensed SemiBold (condensed sans)"),
    Face("DejaVuSerif-Bold.ttf", "DejaVu Serif Bold (serif)"),
    Face("DejaVuSansMono-Bold.ttf", "DejaVu Sans Mono Bold (monospace)"),
    Face("DSEG7Classic-Bold.ttf", "DSEG7 Classic Bold (7-segment LCD)", None, "0123456789 .:-"),
    Face("Barlow-Regular.ttf", "Barlow Regular (light sans)"),
)


@functools.lru_cache(maxsize=64)
def font(face: int, size: int) -> ImageFont.FreeTypeFont:
    """The face at ``size`` px, basic layout (no shaping engine: a string never fails to
    lay out, and the result is the same with or without libraqm)."""
    f = FACES[face]
    out = ImageFont.truetype(str(FONT_DIR / f.file), size, layout_engine=ImageFont.Layout.BASIC)
    if f.weight is not None:
        out.set_variation_by_axes([f.weight])
    return out


@dataclass(frozen=True, slots=True)
class Style:
    """A word's rendering parameters, quantised as carried (see the module docstring)."""

    face: int = 0
    dark: bool = True
    inset: int = 5
    stretch: int = 8
    dx: int = 0
    dy: int = 0
    fg: tuple[int, int, int] | None = None
    bg: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        for name, v, lo, hi in (
            ("face", self.face, 0, len(FACES) - 1),
            ("inset", self.inset, 0, 15),
            ("stretch", self.stretch, 0, 15),
            ("dx", self.dx, -8, 7),
            ("dy", self.dy, -8, 7),
        ):
            if not (isinstance(v, int) and lo <= v <= hi):
                raise ValueError(f"style {name} {v!r} outside {lo}..{hi}")
        if (self.fg is None) != (self.bg is None):
            raise ValueError("style colours: fg and bg are both given or both None")
        for name, c in (("fg", self.fg), ("bg", self.bg)):
            if c is not None and (len(c) != 3 or not all(0 <= v <= 15 for v in c)):
                raise ValueError(f"style {name} {c!r}: expected three 4-bit channels")

    @property
    def coloured(self) -> bool:
        return self.fg is not None

    def rgb(self) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
        """(fg, bg) as 8-bit RGB, or None without colours."""
        if self.fg is None or self.bg is None:
            return None
        return tuple(17 * v for v in self.fg), tuple(17 * v for v in self.bg)  # type: ignore[return-value]


def quantise_colour(rgb) -> tuple[int, int, int]:
    """An 8-bit RGB colour to 4 bits a channel (nearest)."""
    return tuple(min(15, max(0, round(float(v) / 17))) for v in rgb)  # type: ignore[return-value]


def ink_box(style: Style, rw: float, rh: float) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the glyphs' ink inside a ``rw``×``rh`` rectangle, in the
    rectangle's own frame (origin at its top-left corner, x along the text)."""
    return ink_box_of(style.inset, style.stretch, style.dx, style.dy, rw, rh)


def ink_box_of(
    inset: int, stretch: int, dx: int, dy: int, rw: float, rh: float
) -> tuple[float, float, float, float]:
    """:func:`ink_box` from the bare fields (the sender's search builds no Style)."""
    m = inset * rh / INSET_STEPS
    ih = max(rh - 2 * m, 1e-3)
    iw = max((rw - 2 * m) * (STRETCH_BASE + STRETCH_STEP * stretch), 1e-3)
    cx = rw / 2 + dx * SHIFT_STEP * rh
    cy = rh / 2 + dy * SHIFT_STEP * rh
    return cx - iw / 2, cy - ih / 2, cx + iw / 2, cy + ih / 2
