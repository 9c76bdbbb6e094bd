"""Scene-text ground truth: ICDAR-2015 word quads and OpenALPR licence plates, one model.

Two on-disk formats are read (see ``../shared/data/scenetext/README.md``):

- ICDAR 2015, ``gt_<image stem>.txt``: UTF-8 with a BOM, CR LF line ends, one word per line
  ``x1,y1,x2,y2,x3,y3,x4,y4,transcription`` (clockwise from the top-left). A line is split on
  its first 8 commas only, since a transcription may hold commas. ``###`` marks a region
  that is "don't care".
- OpenALPR, ``<image stem>.txt``: one line ``image<TAB>x<TAB>y<TAB>w<TAB>h<TAB>PLATE`` with
  an axis-aligned plate box, converted on load to the quad ``x,y, x+w,y, x+w,y+h, x,y+h``.
  Only one plate per photo is annotated, so the set is marked ``kind="plate"``: the matcher
  then ignores detections that do not touch the annotated plate (other vehicles' plates and
  any other text in the photo carry no boxes).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "DONT_CARE",
    "IMAGE_SUFFIXES",
    "GtImage",
    "GtWord",
    "load_dataset",
    "load_sets",
    "parse_icdar2015",
    "parse_openalpr",
    "read_gt",
]

DONT_CARE = "###"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
Kind = Literal["icdar2015", "plate"]


@dataclass(frozen=True)
class GtWord:
    """One annotated text region: a (4, 2) quad in pixels, its string, and whether it counts."""

    quad: np.ndarray
    text: str
    care: bool = True

    def __post_init__(self) -> None:
        q = np.asarray(self.quad, dtype=np.float64)
        if q.shape != (4, 2) or not np.all(np.isfinite(q)):
            raise ValueError(
                f"ground truth {self.text!r}: quad of shape {q.shape}, expected (4, 2)"
            )
        object.__setattr__(self, "quad", q)


@dataclass(frozen=True)
class GtImage:
    """An image file and its annotations; ``kind`` says how the matcher treats it."""

    image: Path
    gt_file: Path
    kind: Kind
    words: tuple[GtWord, ...]

    @property
    def care_words(self) -> tuple[GtWord, ...]:
        return tuple(w for w in self.words if w.care)


def parse_icdar2015(text: str, source: str = "<text>") -> list[GtWord]:
    """Words of an ICDAR-2015 ground-truth file's contents (BOM and CR tolerated)."""
    words = []
    for n, line in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(",", 8)
        if len(parts) != 9:
            raise ValueError(f"{source}:{n}: expected 8 coordinates and a transcription: {line!r}")
        try:
            xy = [float(p) for p in parts[:8]]
        except ValueError:
            raise ValueError(f"{source}:{n}: a coordinate is not a number: {line!r}") from None
        label = parts[8]
        care = label != DONT_CARE
        words.append(GtWord(np.reshape(xy, (4, 2)), label, care))
    return words


def parse_openalpr(text: str, source: str = "<text>") -> tuple[str, GtWord]:
    """(image file name, plate) of an OpenALPR annotation: one TAB-separated line."""
    lines = [ln for ln in text.lstrip("\ufeff").splitlines() if ln.strip()]
    if len(lines) != 1:
        raise ValueError(f"{source}: expected one annotation line, found {len(lines)}")
    parts = lines[0].strip().split("\t")
    if len(parts) != 6:
        raise ValueError(
            f"{source}: expected image, x, y, w, h, plate (TAB-separated): {lines[0]!r}"
        )
    name, *box, plate = parts
    try:
        x, y, w, h = (float(v) for v in box)
    except ValueError:
        raise ValueError(f"{source}: x, y, w, h must be numbers: {lines[0]!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"{source}: plate box of size {w}x{h}")
    if not plate:
        raise ValueError(f"{source}: empty plate string")
    quad = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
    return name, GtWord(quad, plate, True)


def read_gt(image: Path) -> GtImage | None:
    """The ground truth beside ``image`` (``gt_<stem>.txt`` or ``<stem>.txt``), or None."""
    icdar = image.with_name(f"gt_{image.stem}.txt")
    if icdar.is_file():
        words = parse_icdar2015(icdar.read_text(encoding="utf-8-sig"), str(icdar))
        return GtImage(image, icdar, "icdar2015", tuple(words))
    alpr = image.with_suffix(".txt")
    if alpr.is_file():
        name, word = parse_openalpr(alpr.read_text(encoding="utf-8-sig"), str(alpr))
        if name != image.name:
            raise ValueError(f"{alpr}: annotates {name!r}, not {image.name!r}")
        return GtImage(image, alpr, "plate", (word,))
    return None


def load_dataset(folder: Path, limit: int | None = None) -> tuple[list[GtImage], list[str]]:
    """Annotated images of ``folder`` sorted by name (the first ``limit``), and the names of
    images that have no ground truth file (skipped)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {folder}")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    out: list[GtImage] = []
    skipped: list[str] = []
    for p in images:
        if limit is not None and len(out) >= limit:
            break
        gt = read_gt(p)
        if gt is None:
            skipped.append(p.name)
        else:
            out.append(gt)
    if not out:
        raise FileNotFoundError(
            f"no annotated images in {folder} (expected gt_<image>.txt or <image>.txt beside "
            f"{'/'.join(IMAGE_SUFFIXES)} files)"
        )
    return out, skipped


def load_sets(
    root: Path, names: Iterable[str], limit: int = 0
) -> Iterator[tuple[str, list[GtImage]]]:
    """``(name, images)`` of each set ``root/NAME`` in turn, the first ``limit`` annotated
    images of each (0: all): the loop the text benchmarks run over their ``--sets``."""
    for name in names:
        yield name, load_dataset(root / name, limit or None)[0]
