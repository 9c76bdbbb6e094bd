"""The word block's inputs in one tile, built from the carried words alone (torch-free).

Channels (``INPUT_CHANNELS`` = 7), each (h, w) float32 over the tile:

0. g: the guidance map (the receiver's renderer, words drawn white on black);
1–3. the colour composite fg·g + bg·(1 − g) inside each word's rectangle whose two
   colours are carried (0 elsewhere and when they are not);
4. 1 inside the rectangles of words whose colours are carried;
5. polarity inside each word's rectangle where it is known: +1 light text on a dark
   ground, −1 dark on light, 0 unknown;
6. the region weight (:func:`textboost.fusion.regions.region_weight`): where, and how
   much, the block's correction is applied.

A word's style (polarity, colours; :func:`carried_style`) is what the sender chose from
the original pixels (``textboost.text.match``) and the text section carried.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from textboost.fusion.regions import HALO, Tile, pad_tile, region_weight, word_tiles
from textboost.text.words import Word, oriented_rect

__all__ = [
    "INPUT_CHANNELS", "WordStyle", "carried_style", "fuse_words", "tile_inputs",
]  # fmt: skip

INPUT_CHANNELS = 7


@dataclass(frozen=True)
class WordStyle:
    """What the sender carried about a word's look: polarity (+1 light on dark, −1 dark on
    light, 0 unknown) and, optionally, ink and ground colours (RGB 0–255)."""

    polarity: int = 0
    fg: tuple[int, int, int] | None = None
    bg: tuple[int, int, int] | None = None


def _shifted(word: Word, tile: Tile) -> Word:
    """The word in tile coordinates (its string and style as carried)."""
    return replace(word, quad=word.quad - [tile.x0, tile.y0])


def carried_style(word: Word) -> WordStyle | None:
    """What the stream says about the word's look (a version-1 text section's style)."""
    st = getattr(word, "style", None)
    if st is None:
        return None
    rgb = st.rgb()
    return WordStyle(-1 if st.dark else 1, *(rgb if rgb is not None else (None, None)))


def _rect_mask(word: Word, shape: tuple[int, int]) -> np.ndarray:
    """Pixels (centres) inside the word's oriented rectangle, in tile coordinates."""
    cx, cy, rw, rh, a = oriented_rect(word.quad)
    h, w = shape
    ys = np.arange(h)[:, None] + 0.5 - cy
    xs = np.arange(w)[None, :] + 0.5 - cx
    ca, sa = math.cos(a), math.sin(a)
    u = xs * ca + ys * sa
    v = -xs * sa + ys * ca
    return (np.abs(u) <= rw / 2) & (np.abs(v) <= rh / 2)


def tile_inputs(
    words: Sequence[Word], tile: Tile, styles: Sequence[WordStyle | None] | None = None
) -> np.ndarray:
    """(INPUT_CHANNELS, h, w) float32 for the words of ``tile``; ``styles`` per word of
    ``words`` (None: each word's carried style, :func:`carried_style`)."""
    from textboost.text.render import render_guidance

    h, w = tile.shape
    out = np.zeros((INPUT_CHANNELS, h, w), np.float32)
    local = [_shifted(words[i], tile) for i in tile.words]
    out[0] = render_guidance(local, w, h)
    for i, lw in zip(tile.words, local, strict=True):
        st = styles[i] if styles is not None else carried_style(words[i])
        if st is None:
            continue
        inside = _rect_mask(lw, (h, w))
        if st.polarity:
            out[5][inside] = float(st.polarity)
        if st.fg is not None and st.bg is not None:
            g = out[0][inside]
            for c in range(3):
                out[1 + c][inside] = (st.fg[c] * g + st.bg[c] * (1 - g)) / 255.0
            out[4][inside] = 1.0
    out[6] = region_weight(words, tile)
    return out


def _restore_weight(words: Sequence[Word], tile: Tile) -> np.ndarray:
    """The region weight with each word's scaled by its restore strength (max over words)."""
    out = np.zeros(tile.shape, np.float32)
    for i in tile.words:
        if words[i].restore > 0:
            one = Tile(tile.x0, tile.y0, tile.x1, tile.y1, (i,))
            np.maximum(out, np.float32(words[i].restore) * region_weight(words, one), out=out)
    return out


def fuse_words(
    run: Callable[[np.ndarray, np.ndarray], np.ndarray],
    decoded: np.ndarray,
    words: Sequence[Word],
    styles: Sequence[WordStyle | None] | None = None,
    halo: int = HALO,
) -> np.ndarray:
    """The decoded HxWx3 uint8 image with the word block applied in every word tile, each
    word's correction scaled by its carried :attr:`~textboost.text.words.Word.restore`.

    ``run`` is the backend's call on float32 (1, 3, h, w) and (1, INPUT_CHANNELS, h, w)
    arrays (h, w multiples of 4) returning (1, 3, h, w). Only pixels of non-zero region
    weight are written: every other pixel is ``decoded``'s, bit for bit. No words: a copy.
    """
    if decoded.ndim != 3 or decoded.shape[2] != 3 or decoded.dtype != np.uint8:
        raise ValueError(f"decoded image {decoded.shape} {decoded.dtype}, expected HxWx3 uint8")
    h, w = decoded.shape[:2]
    out = decoded.copy()
    for tile in word_tiles(words, w, h, halo):
        th, tw = tile.shape
        inp = tile_inputs(words, tile, styles)
        x = decoded[tile.y0 : tile.y1, tile.x0 : tile.x1].astype(np.float32) / np.float32(255)
        x = np.ascontiguousarray(pad_tile(x.transpose(2, 0, 1))[None])
        y = run(x, np.ascontiguousarray(pad_tile(inp)[None]))[0, :, :th, :tw]
        region = inp[-1] > 0
        y = np.clip(y, 0, 1)
        if any(words[i].restore != 1.0 for i in tile.words):
            # the block's picture is x + r·delta; a word restored by s gets x + s·r·delta
            scaled = _restore_weight(words, tile)
            gain = np.divide(scaled, inp[-1], out=np.zeros_like(scaled), where=region)
            y = np.clip(x[0, :, :th, :tw] + gain * (y - x[0, :, :th, :tw]), 0, 1)
            region &= scaled > 0
        y8 = (y * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)
        out[tile.y0 : tile.y1, tile.x0 : tile.x1][region] = y8[region]
    return out
