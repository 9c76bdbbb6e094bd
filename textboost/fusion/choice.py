"""How much of the receiver's block each carried word gets: the sender's choice, on the original.

The word block draws glyphs from the carried string. Where they coincide with the photo's,
the word comes back sharper; where they do not (a misread, a face, weight or ink tone the
renderer lacks, a word a few pixels high) the drawn glyphs cost the pixels more than they
give, and look photographed besides. Only the sender can tell: it has the original pixels
and the same block (ONNX Runtime on the edge). It fuses its own decoded picture and, word
by word, picks the share of the block's correction, in thirds, that brings the word's
region (weighted as the correction is, :func:`textboost.fusion.regions.region_weight`)
closest to the original: a misread gets none, a plate whose drawn ink is darker than the
real one gets a part, a word drawn as it is printed gets all. The strength travels in two
spare bits of the word's flags byte (:func:`textboost.text.payload.with_restore`).

Torch-free: ``fuse`` is the backend's ``fuse_words`` (torch or ONNX Runtime).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from textboost.fusion.regions import region_weight, word_tiles
from textboost.text.words import Word

__all__ = ["STRENGTHS", "region_errors", "restore_choice"]

STRENGTHS = (0.0, 1 / 3, 2 / 3, 1.0)  # what two bits carry


def _regions(original: np.ndarray, words: Sequence[Word]):
    """Per word: (tile, (h, w, 1) float64 weight) for each of its tiles in the image."""
    h, w = original.shape[:2]
    for word in words:
        yield [
            (t, region_weight([word], t)[..., None].astype(np.float64))
            for t in word_tiles([word], w, h, halo=0)
        ]


def region_errors(
    original: np.ndarray, pictures: Sequence[np.ndarray], words: Sequence[Word]
) -> np.ndarray:
    """(len(pictures), len(words)) weighted squared error of each picture against the
    original inside each word's region (0 for a word wholly outside the image)."""
    out = np.zeros((len(pictures), len(words)), np.float64)
    for i, tiles in enumerate(_regions(original, words)):
        for t, wt in tiles:
            ref = original[t.y0 : t.y1, t.x0 : t.x1].astype(np.float64)
            for k, pic in enumerate(pictures):
                d = pic[t.y0 : t.y1, t.x0 : t.x1].astype(np.float64) - ref
                out[k, i] += float(np.sum(wt * d * d))
    return out


def restore_choice(
    fuse: Callable[[np.ndarray, list[Word]], np.ndarray],
    original: np.ndarray,
    decoded: np.ndarray,
    words: Sequence[Word],
) -> list[float]:
    """Per word, the strength in :data:`STRENGTHS` whose blend ``decoded + s·(fused −
    decoded)`` is closest to ``original`` inside the word's region, ``fused`` being the
    block's output on ``decoded`` (what the receiver will decode) with every word; ties
    go to the weaker strength."""
    if not words:
        return []
    fused = fuse(decoded, list(words))
    out = []
    for tiles in _regions(original, words):
        err = np.zeros(len(STRENGTHS))
        for t, wt in tiles:
            box = (slice(t.y0, t.y1), slice(t.x0, t.x1))
            x = decoded[box].astype(np.float64)
            delta = fused[box].astype(np.float64) - x
            e = original[box].astype(np.float64) - x
            for k, s in enumerate(STRENGTHS):
                err[k] += float(np.sum(wt * (s * delta - e) ** 2))
        out.append(STRENGTHS[int(np.argmin(err))])
    return out
