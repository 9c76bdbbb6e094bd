"""Where the word fusion block runs: around the carried words, nowhere else.

Each carried word's oriented rectangle (the renderer's, :func:`textboost.text.words.
oriented_rect`) grown by a margin is the word's *region*; the block corrects pixels there
only, with a weight that is 1 inside the rectangle and falls to 0 across the margin, so
every pixel outside the regions is the codec's own, bit for bit, and the receiver's cost
grows with the text, not the megapixels. The block sees ``HALO`` pixels of context around
each region: regions are gathered into axis-aligned *tiles* (their bounding boxes grown by
the halo, overlapping ones merged), and the network runs once per tile.

Torch-free: training crops and the runtime (torch or ONNX Runtime) share this geometry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from textboost.text.words import Word, oriented_rect

__all__ = [
    "HALO",
    "MARGIN_FRAC",
    "MARGIN_MIN",
    "TILE_MULTIPLE",
    "Tile",
    "pad_tile",
    "region_weight",
    "word_tiles",
]

MARGIN_FRAC = 0.5  # a region is the word's rectangle grown by this share of its height ...
MARGIN_MIN = 4.0  # ... and by at least this many pixels, on every side
HALO = 24  # context (px) the network sees around a region (its reach is about this far)
TILE_MULTIPLE = 4  # tiles are padded to a multiple of the network's total stride


@dataclass(frozen=True)
class Tile:
    """An axis-aligned window of the image (x0, y0 inclusive; x1, y1 exclusive) and the
    indices of the words whose regions it holds."""

    x0: int
    y0: int
    x1: int
    y1: int
    words: tuple[int, ...]

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0


def _margin(height: float) -> float:
    return max(MARGIN_MIN, MARGIN_FRAC * height)


def _region_box(word: Word) -> tuple[float, float, float, float]:
    """Bounding box of the word's grown rectangle, in image pixels (floats)."""
    cx, cy, rw, rh, a = oriented_rect(word.quad)
    m = _margin(rh)
    hw, hh = rw / 2 + m, rh / 2 + m
    ex = abs(hw * math.cos(a)) + abs(hh * math.sin(a))
    ey = abs(hw * math.sin(a)) + abs(hh * math.cos(a))
    return cx - ex, cy - ey, cx + ex, cy + ey


def word_tiles(words: Sequence[Word], width: int, height: int, halo: int = HALO) -> list[Tile]:
    """Tiles covering every word's region plus ``halo`` px of context, clipped to the image;
    overlapping tiles are merged until none overlap. Words wholly outside give none."""
    boxes: list[list[int]] = []
    members: list[set[int]] = []
    for i, w in enumerate(words):
        x0, y0, x1, y1 = _region_box(w)
        b = [
            max(0, math.floor(x0) - halo),
            max(0, math.floor(y0) - halo),
            min(width, math.ceil(x1) + 1 + halo),
            min(height, math.ceil(y1) + 1 + halo),
        ]
        if b[0] < b[2] and b[1] < b[3]:
            boxes.append(b)
            members.append({i})
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    members[i] |= members.pop(j)
                    boxes.pop(j)
                    merged = True
                    break
            if merged:
                break
    tiles = [Tile(*b, tuple(sorted(m))) for b, m in zip(boxes, members, strict=True)]
    return sorted(tiles, key=lambda t: (t.y0, t.x0))


def region_weight(words: Sequence[Word], tile: Tile) -> np.ndarray:
    """(h, w) float32 weight of the block's correction in a tile: 1 inside each word's
    rectangle, falling linearly to 0 across its margin (the maximum over words); 0 beyond.

    Evaluated at pixel centres; the same numbers in training crops and at the receiver.
    """
    h, w = tile.shape
    out = np.zeros((h, w), np.float32)
    ys = np.arange(tile.y0, tile.y1, dtype=np.float64) + 0.5
    xs = np.arange(tile.x0, tile.x1, dtype=np.float64) + 0.5
    for i in tile.words:
        cx, cy, rw, rh, a = oriented_rect(words[i].quad)
        m = _margin(rh)
        bx0, by0, bx1, by1 = _region_box(words[i])
        c0 = max(0, math.floor(bx0) - tile.x0)
        c1 = min(w, math.ceil(bx1) + 1 - tile.x0)
        r0 = max(0, math.floor(by0) - tile.y0)
        r1 = min(h, math.ceil(by1) + 1 - tile.y0)
        if c0 >= c1 or r0 >= r1:
            continue
        dx = xs[None, c0:c1] - cx
        dy = ys[r0:r1, None] - cy
        ca, sa = math.cos(a), math.sin(a)
        u = np.abs(dx * ca + dy * sa) - rw / 2  # distance outside the rectangle, along
        v = np.abs(-dx * sa + dy * ca) - rh / 2  # ... and across the text
        d = np.maximum(np.maximum(u, v), 0.0)
        wt = np.clip(1.0 - d / m, 0.0, 1.0).astype(np.float32)
        np.maximum(out[r0:r1, c0:c1], wt, out=out[r0:r1, c0:c1])
    return out


def pad_tile(a: np.ndarray, multiple: int = TILE_MULTIPLE) -> np.ndarray:
    """``a`` zero-padded at the bottom and right of its last two axes to multiples of
    ``multiple`` (the network's total stride); padded pixels have region weight 0."""
    h, w = a.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if not (ph or pw):
        return a
    return np.pad(a, [(0, 0)] * (a.ndim - 2) + [(0, ph), (0, pw)])
