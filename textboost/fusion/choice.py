"""Which carried words the receiver's block restores: the sender's choice, on the original.

The word block draws glyphs from the carried string. Where they coincide with the photo's,
the word comes back sharper; where they do not (a misread, a face or slant the renderer
lacks, a word a few pixels high) the drawn glyphs cost the pixels more than they give, and
look photographed besides. Only the sender can tell the two apart: it has the original
pixels and the same block (ONNX Runtime on the edge). It fuses its own decoded picture and,
word by word, compares the squared error inside the word's region (weighted as the block's
correction is, :func:`textboost.fusion.regions.region_weight`) with and without the block;
a word the block does not bring closer to the original is carried with restoration off,
and the receiver leaves its pixels as the codec decoded them.

Torch-free: ``fuse`` is the backend's ``fuse_words`` (torch or ONNX Runtime).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from textboost.fusion.regions import region_weight, word_tiles
from textboost.text.words import Word

__all__ = ["region_errors", "restore_choice"]


def region_errors(
    original: np.ndarray, pictures: Sequence[np.ndarray], words: Sequence[Word]
) -> np.ndarray:
    """(len(pictures), len(words)) weighted squared error of each picture against the
    original inside each word's region (0 for a word wholly outside the image)."""
    h, w = original.shape[:2]
    out = np.zeros((len(pictures), len(words)), np.float64)
    for i, word in enumerate(words):
        for tile in word_tiles([word], w, h, halo=0):
            wt = region_weight([word], tile)[..., None].astype(np.float64)
            ref = original[tile.y0 : tile.y1, tile.x0 : tile.x1].astype(np.float64)
            for k, pic in enumerate(pictures):
                d = pic[tile.y0 : tile.y1, tile.x0 : tile.x1].astype(np.float64) - ref
                out[k, i] += float(np.sum(wt * d * d))
    return out


def restore_choice(
    fuse: Callable[[np.ndarray, list[Word]], np.ndarray],
    original: np.ndarray,
    decoded: np.ndarray,
    words: Sequence[Word],
) -> list[bool]:
    """Per word: does the block, run on ``decoded`` (what the receiver will decode) with
    these words, bring the word's region closer to ``original``?"""
    if not words:
        return []
    fused = fuse(decoded, list(words))
    err = region_errors(original, [decoded, fused], words)
    return [bool(e_fused < e_plain) for e_plain, e_fused in err.T]
