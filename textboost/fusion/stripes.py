"""Running a fusion network over an image in row stripes: the one loop every backend uses.

The block reaches 3 px, so stripes of ``STRIPE_ROWS`` rows with ``HALO`` rows of context
above and below give exactly the result of one pass, in memory bounded by the stripe.
Torch-free: ``run`` is the backend's call on float32 (1, 3, h, W) and (1, 1, h, W) arrays.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["HALO", "STRIPE_ROWS", "fuse_in_stripes"]

STRIPE_ROWS = 256  # rows fused at a time, so a large image needs little memory
HALO = 8  # rows of context above and below a stripe: more than the block's 3-px reach


def fuse_in_stripes(
    run: Callable[[np.ndarray, np.ndarray], np.ndarray],
    decoded: np.ndarray,
    guidance: np.ndarray | None = None,
    rows: int | None = None,
) -> np.ndarray:
    """Fuse an HxWx3 uint8 decoded image with an HxW guidance map in [0, 1] (None: zeros).

    ``guidance`` None (no words) is the all-zero map: the block still runs, as a
    post-filter. Returns HxWx3 uint8.
    """
    if decoded.ndim != 3 or decoded.shape[2] != 3 or decoded.dtype != np.uint8:
        raise ValueError(f"decoded image {decoded.shape} {decoded.dtype}, expected HxWx3 uint8")
    h, w = decoded.shape[:2]
    if guidance is None:
        guidance = np.zeros((h, w), np.float32)
    g = np.asarray(guidance)
    if g.ndim == 3 and g.shape[2] in (1, 3):
        g = g.mean(axis=2) if g.shape[2] == 3 else g[:, :, 0]
    if g.shape != (h, w):
        raise ValueError(f"guidance of shape {g.shape}, expected ({h}, {w})")
    out = np.empty_like(decoded)
    rows = rows or STRIPE_ROWS
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        a, b = max(0, y0 - HALO), min(h, y1 + HALO)
        # float copies of one stripe at a time: a 24 MP frame never exists in float32
        xs = np.ascontiguousarray(
            (decoded[a:b].astype(np.float32) / np.float32(255)).transpose(2, 0, 1)[None]
        )
        gs = np.ascontiguousarray(np.clip(g[a:b].astype(np.float32), 0.0, 1.0)[None, None])
        y = run(xs, gs)[0, :, y0 - a : y1 - a]
        out[y0:y1] = (np.clip(y, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)
    return out
