"""g_s in tiles: the receiver's synthesis with bounded memory on large coded images.

g_s is convolutions only (no normalisation over the image, no global attention), and an
output pixel depends on the latents at most ``REACH`` = 7 cells away on each side (found by
back-propagating from one output pixel through g_s with all-positive weights: cells
13..27 for a pixel of cell 20). A tile decoded with ``HALO`` ≥ ``REACH`` latent cells of
its neighbours around it, and cropped back, therefore computes the same function as the
whole image: it differs only by the float rounding of convolutions run on other array
shapes (measured in ``benchmarks/tiled_decode.py``). Tiles that touch the image's edge see
the same zero padding there as the whole image does.

The latents, and so everything the entropy decoder does, are the same either way; only
g_s, a float transform that already differs between backends and machines, is tiled. On
the largest coded size (1920×1080, torch) tiles of 64 cells cut the decoding process's
peak from 877 to 506 MiB for 22 % more g_s time, and 73 of 6.3 M uint8 values differ from
the whole-image g_s, by one level; a 1024×768 coded image is a single call.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import numpy as np

__all__ = ["HALO", "REACH", "TILE", "synthesis_tiled"]

REACH = 7  # latent cells an output pixel of g_s depends on, each side
HALO = 8  # latent cells of context decoded around each tile (≥ REACH)
TILE = 64  # latent cells a side of a tile's own area (1024 px; tiles are near equal)
STRIDE = 16  # output pixels a latent cell


def _spans(n: int, tile: int) -> list[tuple[int, int]]:
    """``n`` cells cut into near-equal spans of at most ``tile``."""
    k = -(-n // tile)
    cuts = [round(i * n / k) for i in range(k + 1)]
    return list(pairwise(cuts))


def synthesis_tiled(
    synthesis: Callable[[np.ndarray], np.ndarray],
    y_hat: np.ndarray,
    tile: int = TILE,
    halo: int = HALO,
) -> np.ndarray:
    """``synthesis`` (ŷ (B, h, w, M) → x̂ (B, 3, 16h, 16w)) run in tiles of at most
    ``tile``² latent cells plus ``halo`` cells of context a side; one call when the whole
    image is a single tile. Peak memory is that of one tile's synthesis, plus the output."""
    if tile < 1 or halo < 0:
        raise ValueError(f"tile {tile}, halo {halo}: expected tile >= 1, halo >= 0")
    _, h, w, _ = y_hat.shape
    if h <= tile and w <= tile:
        return synthesis(y_hat)
    out: np.ndarray | None = None
    for r0, r1 in _spans(h, tile):
        a, b = max(r0 - halo, 0), min(r1 + halo, h)
        for c0, c1 in _spans(w, tile):
            c, d = max(c0 - halo, 0), min(c1 + halo, w)
            x = synthesis(y_hat[:, a:b, c:d])
            if out is None:
                out = np.empty((*x.shape[:2], STRIDE * h, STRIDE * w), dtype=x.dtype)
            out[..., STRIDE * r0 : STRIDE * r1, STRIDE * c0 : STRIDE * c1] = x[
                ..., STRIDE * (r0 - a) : STRIDE * (r1 - a), STRIDE * (c0 - c) : STRIDE * (c1 - c)
            ]
    assert out is not None
    return out
