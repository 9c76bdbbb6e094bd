"""Synthetic scene text on natural photos, with its ground truth, for stage-2 training.

Words, plate-like strings on plate panels and sign panels of one to three lines are
drawn in DejaVu fonts (the TTFs inside matplotlib's ``mpl-data``: training-only code),
cap heights down to ``cap_px[0]`` (≈ 7 px), each item rotated, mildly warped in
perspective and blurred on its own, then the whole image gets sensor noise. Every line
of text is one ground-truth entry: its ink box in ICDAR 2015 order (clockwise from the
top-left as read) carried through the item's warp, and its string.

Deterministic: :meth:`SceneTextGenerator.generate` of (seed, index) draws everything
from ``numpy.random.default_rng([seed, index])``, so sample k does not depend on which
samples were made before it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from textboost.codec.image import load_image
from textboost.text.words import Word
from textboost.train.data import list_images

__all__ = ["SceneTextGenerator", "SynthConfig", "SynthSample", "font_paths", "text_mask"]

FONT_FILES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf",
)  # fmt: skip
PLATE_FONTS = ("DejaVuSansMono-Bold.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf")

STREETS = (
    "Main", "Elm", "Oak", "Park", "Market", "Church", "High", "Station", "Bridge", "Mill",
    "King", "Queen", "Victoria", "Washington", "Lincoln", "Maple", "Cedar", "Pine",
    "River", "Lake", "Hill", "Harbor", "Canal", "Union", "Franklin", "Jefferson",
    "Madison", "Spring", "Sunset", "Forest", "Meadow", "Chestnut", "Walnut", "Willow",
    "Railroad", "Airport", "College", "Garden", "Ocean", "Valley", "Summit", "Cherry",
)  # fmt: skip
STREET_TYPES = ("St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Way", "Street", "Road", "Avenue", "Pl")
SIGN_WORDS = (
    "STOP", "EXIT", "ENTRANCE", "NO PARKING", "ONE WAY", "HOSPITAL", "POLICE", "FIRE",
    "PHARMACY", "HOTEL", "CAFE", "OPEN", "CLOSED", "SALE", "BANK", "TAXI", "BUS STOP",
    "SCHOOL", "EMERGENCY", "HELP", "SOS", "WATER", "FOOD", "DANGER", "KEEP OUT", "PRIVATE",
    "DELIVERY", "MEDICAL", "SHELTER", "EVACUATION", "ROUTE", "NORTH", "SOUTH", "EAST",
    "WEST", "CENTER", "MUSEUM", "LIBRARY", "BAKERY", "GARAGE", "PARKING", "TOILETS",
    "INFO", "TICKETS", "PIZZA", "SUPERMARKET", "FUEL", "DIESEL", "REPAIRS", "YIELD",
    "AMBULANCE", "RESCUE", "LANDING", "HELIPAD", "GATE", "ZONE", "DETOUR", "CLINIC",
    "First Aid", "Exit only", "Welcome", "Fresh Bread", "Coffee", "Since", "Open 24h",
    "Drinking water", "Assembly point", "Staff only", "Pull", "Push", "Fire escape",
)  # fmt: skip
STATES = ("CALIFORNIA", "TEXAS", "OREGON", "NEVADA", "FLORIDA", "OHIO", "MAINE", "IOWA")
PLATE_FORMATS = (
    "LL DDD LL", "DLLLDDD", "LLL DDDD", "LLDD LLL", "LL-DDD-LL", "DDD LLL", "L DDDD LL",
    "LLL-DDD", "DDLLDD", "LL DDDD",
)  # fmt: skip
LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"


def font_paths() -> dict[str, Path]:
    """The DejaVu TTFs inside matplotlib (present wherever matplotlib is installed)."""
    import matplotlib

    root = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    paths = {name: root / name for name in FONT_FILES}
    missing = [n for n, p in paths.items() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"matplotlib fonts missing under {root}: {missing}")
    return paths


@functools.lru_cache(maxsize=512)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


@functools.lru_cache(maxsize=32)
def _cap_ratio(path: Path) -> float:
    """Cap height per pixel of font size (height of the ink of 'H')."""
    _l, t, _r, b = _font(path, 200).getbbox("H")
    return (b - t) / 200


@dataclass(frozen=True)
class SynthConfig:
    max_side: int = 768  # photos are scaled down to this long side
    min_side: int = 320  # ... and never below this short side (smaller photos are skipped)
    items: tuple[int, int] = (3, 9)  # text items (words, plates, signs) per image
    cap_px: tuple[float, float] = (7.0, 36.0)  # cap height range, log-uniform
    p_plate: float = 0.3
    p_sign: float = 0.35  # the rest are words drawn straight on the photo
    max_angle: float = 25.0  # degrees; angles are N(0, max_angle/2.5), clipped
    perspective: float = 0.06  # corner jitter as a fraction of the item's size
    blur: tuple[float, float] = (0.0, 0.9)  # Gaussian σ per item, px
    noise: tuple[float, float] = (0.0, 3.0)  # Gaussian σ of the whole image, 8-bit levels


@dataclass
class SynthSample:
    image: np.ndarray  # HxWx3 uint8
    words: list[Word]  # one per line of text, quads in ICDAR order
    ink: np.ndarray  # HxW uint8: the drawn glyphs' coverage (not the panels)
    photo: str  # the photo it was drawn on
    fonts: tuple[str, ...] = ()  # the font files its items were drawn in


def text_mask(words: Sequence[Word], width: int, height: int) -> np.ndarray:
    """HxW float32 mask with each word's quad filled with 1 (the paper's m)."""
    m = np.zeros((height, width), np.uint8)
    for w in words:
        cv2.fillPoly(m, [np.round(w.quad).astype(np.int32)], 1)
    return m.astype(np.float32)


class SceneTextGenerator:
    """Draws synthetic scene text onto photos from ``photo_dirs`` (never Kodak)."""

    def __init__(
        self,
        photo_dirs: Sequence[str | Path],
        cfg: SynthConfig | None = None,
        fonts: Sequence[Path] = (),
    ) -> None:
        """``fonts``: font files to draw every kind of item in, instead of the DejaVu set
        (training the fusion block on many faces, so that no face means "trust the map")."""
        self.cfg = cfg or SynthConfig()
        self.photos = list_images(photo_dirs)  # refuses Kodak
        self.fonts = font_paths()
        self.extra_fonts = list(fonts)

    def generate(self, seed: int, index: int) -> SynthSample:
        """Sample ``index`` of the stream ``seed``: the same on every call and machine."""
        rng = np.random.default_rng([seed, index])
        for _ in range(20):
            path = self.photos[int(rng.integers(len(self.photos)))]
            img = load_image(path)
            if min(img.shape[:2]) * min(1.0, self.cfg.max_side / max(img.shape[:2])) >= min(
                self.cfg.min_side, min(img.shape[:2])
            ):
                break
        img = _fit(img, self.cfg.max_side)
        canvas = img.astype(np.float32)
        ink = np.zeros(img.shape[:2], np.float32)
        busy = np.zeros(img.shape[:2], np.uint8)
        words: list[Word] = []
        self._used: list[str] = []
        for _ in range(int(rng.integers(self.cfg.items[0], self.cfg.items[1] + 1))):
            u = rng.random()
            kind = "plate" if u < self.cfg.p_plate else (
                "sign" if u < self.cfg.p_plate + self.cfg.p_sign else "word"
            )  # fmt: skip
            words += self._item(rng, kind, canvas, ink, busy)
        lo, hi = self.cfg.noise
        canvas += rng.normal(0.0, rng.uniform(lo, hi), canvas.shape).astype(np.float32)
        image = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
        return SynthSample(image, words, np.clip(ink * 255 + 0.5, 0, 255).astype(np.uint8),
                           path.name, tuple(self._used))  # fmt: skip

    # -- one text item -----------------------------------------------------------------

    def _item(
        self, rng: np.random.Generator, kind: str, canvas: np.ndarray, ink: np.ndarray,
        busy: np.ndarray,
    ) -> list[Word]:  # fmt: skip
        lo, hi = self.cfg.cap_px
        cap = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        if self.extra_fonts:
            font = self.extra_fonts[int(rng.integers(len(self.extra_fonts)))]
            lines = [_plate_string(rng)] if kind == "plate" else (
                _sign_lines(rng) if kind == "sign" else [_word(rng)]
            )  # fmt: skip
        elif kind == "plate":
            font = self.fonts[PLATE_FONTS[int(rng.integers(len(PLATE_FONTS)))]]
            lines = [_plate_string(rng)]
        else:
            font = self.fonts[FONT_FILES[int(rng.integers(len(FONT_FILES)))]]
            lines = _sign_lines(rng) if kind == "sign" else [_word(rng)]
        self._used.append(font.name)
        layer, quads, strings = _draw_layer(rng, kind, lines, font, cap)
        placed = self._place(rng, layer.shape[1], layer.shape[0], busy)
        if placed is None:
            return []
        hmat, (x0, y0, x1, y1) = placed
        rgba = layer.astype(np.float32) / 255
        if kind == "word":  # pick a colour that stands out from the photo underneath
            under = canvas[y0:y1, x0:x1].reshape(-1, 3).mean(0)
            rgba[..., :3] = _contrasting(rng, under)[None, None] / 255
        sigma = rng.uniform(*self.cfg.blur)
        if sigma > 0.3:
            rgba = np.dstack([cv2.GaussianBlur(rgba[..., :4], (0, 0), sigma),
                              cv2.GaussianBlur(rgba[..., 4], (0, 0), sigma)])  # fmt: skip
        h, w = canvas.shape[:2]
        warped = cv2.warpPerspective(
            np.ascontiguousarray(rgba[..., :4]), hmat, (w, h), flags=cv2.INTER_LINEAR
        )
        glyphs = cv2.warpPerspective(
            np.ascontiguousarray(rgba[..., 4]), hmat, (w, h), flags=cv2.INTER_LINEAR
        )
        a = warped[..., 3:4]
        canvas *= 1 - a
        canvas += a * warped[..., :3] * 255
        np.maximum(ink, glyphs, out=ink)
        busy[max(0, y0 - 3) : y1 + 3, max(0, x0 - 3) : x1 + 3] = 1
        out = []
        for q, s in zip(quads, strings, strict=True):
            wq = cv2.perspectiveTransform(q[None].astype(np.float64), hmat)[0]
            out.append(Word(wq, s, 1.0))
        return out

    def _place(
        self, rng: np.random.Generator, lw: int, lh: int, busy: np.ndarray
    ) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
        """A homography taking the layer into a free spot, and that spot's bounding box."""
        h, w = busy.shape
        src = np.array([[0, 0], [lw, 0], [lw, lh], [0, lh]], np.float64)
        for _ in range(25):
            ang = np.deg2rad(np.clip(rng.normal(0, self.cfg.max_angle / 2.5), -45, 45))
            c, s = np.cos(ang), np.sin(ang)
            rot = (src - [lw / 2, lh / 2]) @ np.array([[c, s], [-s, c]])
            rot += rng.uniform(-1, 1, (4, 2)) * self.cfg.perspective * min(lw, lh, 80)
            bw, bh = rot.max(0) - rot.min(0)
            if bw > w - 4 or bh > h - 4:
                return None
            (mx, my), (nx, ny) = rot.min(0), rot.max(0)
            shift = np.array([rng.uniform(2 - mx, w - 2 - nx), rng.uniform(2 - my, h - 2 - ny)])
            dst = rot + shift
            x0, y0 = np.floor(dst.min(0)).astype(int)
            x1, y1 = np.ceil(dst.max(0)).astype(int) + 1
            if x0 < 0 or y0 < 0 or x1 > w or y1 > h or busy[y0:y1, x0:x1].any():
                continue
            hmat = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
            return hmat, (int(x0), int(y0), int(x1), int(y1))
        return None


def _fit(img: np.ndarray, max_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img
    s = max_side / max(h, w)
    im = Image.fromarray(img).resize((round(w * s), round(h * s)), Image.LANCZOS)
    return np.asarray(im)


def _pattern(rng: np.random.Generator, fmt: str) -> str:
    return "".join(
        LETTERS[int(rng.integers(len(LETTERS)))] if ch == "L"
        else str(int(rng.integers(10))) if ch == "D" else ch
        for ch in fmt
    )  # fmt: skip


def _plate_string(rng: np.random.Generator) -> str:
    return _pattern(rng, PLATE_FORMATS[int(rng.integers(len(PLATE_FORMATS)))])


def _word(rng: np.random.Generator) -> str:
    u = rng.random()
    if u < 0.3:
        s = f"{STREETS[int(rng.integers(len(STREETS)))]} {STREET_TYPES[int(rng.integers(11))]}"
    elif u < 0.6:
        s = SIGN_WORDS[int(rng.integers(len(SIGN_WORDS)))]
    elif u < 0.85:
        s = _number(rng)
    else:
        s = STREETS[int(rng.integers(len(STREETS)))]
    v = rng.random()
    return s.upper() if v < 0.35 else s.lower() if v < 0.5 else s


def _number(rng: np.random.Generator) -> str:
    k = int(rng.integers(6))
    if k == 0:
        return str(int(rng.integers(1, 2000)))  # house number
    if k == 1:
        return f"{int(rng.integers(200, 999))}-{int(rng.integers(0, 9999)):04d}"  # phone
    if k == 2:
        return f"{int(rng.integers(0, 24))}:{int(rng.integers(0, 60)):02d}"  # time
    if k == 3:
        return f"${int(rng.integers(1, 99))}.{int(rng.integers(0, 100)):02d}"  # price
    if k == 4:
        return f"No {int(rng.integers(1, 300))}"
    return f"{int(rng.integers(1, 99))}{LETTERS[int(rng.integers(len(LETTERS)))]}"


def _sign_lines(rng: np.random.Generator) -> list[str]:
    n = int(rng.choice([1, 1, 2, 2, 3]))
    lines = [_word(rng) for _ in range(n)]
    if rng.random() < 0.3:
        lines.append(f"{int(rng.integers(1, 30))}{rng.choice(['km', 'mi', 'm'])}")
    return lines


_PANEL_COLOURS = (
    ((0, 110, 60), (255, 255, 255)),  # green road sign
    ((20, 60, 160), (255, 255, 255)),  # blue
    ((250, 250, 245), (10, 10, 10)),  # white
    ((200, 30, 30), (255, 255, 255)),  # red
    ((250, 205, 0), (15, 15, 15)),  # yellow
    ((40, 40, 40), (240, 240, 240)),  # dark shop sign
    ((120, 70, 30), (245, 235, 200)),  # brown tourist sign
)


def _draw_layer(
    rng: np.random.Generator, kind: str, lines: list[str], font_path: Path, cap: float
) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    """The item as (h, w, 5) uint8 RGBA + glyph coverage, its line quads and strings."""
    size = max(6, round(cap / _cap_ratio(font_path)))
    font = _font(font_path, size)
    small = None
    if kind == "plate" and rng.random() < 0.5 and 0.4 * cap >= 6:
        state = STATES[int(rng.integers(len(STATES)))]
        small = (state, _font(font_path, max(6, round(0.4 * cap / _cap_ratio(font_path)))))
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    entries = ([(small[0], small[1])] if small else []) + [(s, font) for s in lines]
    boxes = [probe.textbbox((0, 0), s, font=f) for s, f in entries]
    widths = [b[2] - b[0] for b in boxes]
    heights = [b[3] - b[1] for b in boxes]
    pad = 0 if kind == "word" else max(2, round(cap * rng.uniform(0.3, 0.7)))
    gap = max(1, round(0.35 * cap))
    tw = max(widths)
    th = sum(heights) + gap * (len(entries) - 1)
    lw, lh = tw + 2 * pad + 2, th + 2 * pad + 2
    if kind == "plate":
        lw = max(lw, round(lh * rng.uniform(1.8, 2.4)))
    panel = Image.new("RGBA", (lw, lh), (0, 0, 0, 0))
    glyphs = Image.new("L", (lw, lh), 0)
    if kind == "plate":
        bg, fg = ((250, 250, 250), (20, 20, 70)) if rng.random() < 0.6 else (
            (245, 200, 20), (10, 10, 10)
        )  # fmt: skip
    elif kind == "sign":
        bg, fg = _PANEL_COLOURS[int(rng.integers(len(_PANEL_COLOURS)))]
    else:
        bg, fg = None, (255, 255, 255)  # the colour is chosen at placement
    draw = ImageDraw.Draw(panel)
    if bg is not None:
        r = max(1, round(pad * 0.5))
        draw.rounded_rectangle((0, 0, lw - 1, lh - 1), r, fill=(*bg, 255))
        if rng.random() < 0.6:
            draw.rounded_rectangle((1, 1, lw - 2, lh - 2), r, outline=(*fg, 255), width=1)
    gdraw = ImageDraw.Draw(glyphs)
    quads, strings = [], []
    y = pad + 1
    for (s, f), b, wd, ht in zip(entries, boxes, widths, heights, strict=True):
        x = (lw - wd) / 2 - b[0]
        draw.text((x, y - b[1]), s, font=f, fill=(*fg, 255))
        gdraw.text((x, y - b[1]), s, font=f, fill=255)
        x0, y0 = (lw - wd) / 2 - 1, y - 1
        x1, y1 = x0 + wd + 2, y0 + ht + 2
        quads.append(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64))
        strings.append(s)
        y += ht + gap
    if rng.random() < 0.3 and kind != "word":
        panel = panel.filter(ImageFilter.SMOOTH)
    out = np.concatenate([np.asarray(panel), np.asarray(glyphs)[..., None]], axis=2)
    return out, quads, strings


def _contrasting(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A text colour whose luminance is far from the background's."""
    lum = float(under @ [0.299, 0.587, 0.114])
    base = rng.uniform(0, 70, 3) if lum > 128 else rng.uniform(190, 255, 3)
    if rng.random() < 0.3:  # a saturated accent
        base[int(rng.integers(3))] = 255 - base[int(rng.integers(3))]
    return base.astype(np.float32)
