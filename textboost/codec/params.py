"""The exact SCCTX parameter path in numpy (NHWC): what both ends run around the coder.

One loop, :meth:`ExactParams.code_group`, serves encoder and decoder: it computes the
parameters of a checkerboard half, hands them to a callback that either quantises and
encodes the true latents or decodes symbols, and continues with the resulting ŷ. The
two ends therefore cannot compute different parameters by construction, and the
arithmetic itself is exact (``exact.py``), so they cannot differ across devices either.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from textboost.codec.exact import (
    ACT_MAX,
    PARAM_MAX,
    IntConv,
    dequantize_q6,
    pixel_shuffle_nhwc,
    scale_index,
    step_q22,
)

__all__ = ["Checkerboard", "ExactParams", "Observer", "SymbolCallback", "anchor_rows"]

# (group k, rows (B, H, W) bool, mu_q6 (n, g), scale index (n, g), step_q22 (g,)) -> symbols
SymbolCallback = Callable[[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
# (group k, flat sites (n,), mu_q6 (n, g), log2 sigma_q6 (n, g)): sees the parameters
Observer = Callable[[int, np.ndarray, np.ndarray, np.ndarray], None]


def anchor_rows(b: int, h: int, w: int) -> np.ndarray:
    """(B, H, W) bool, True at checkerboard anchors ((i + j) even)."""
    i = np.arange(h)[:, None]
    j = np.arange(w)[None, :]
    return np.broadcast_to((i + j) % 2 == 0, (b, h, w))


# The 3×3 taps a non-anchor site's spatial context reads, (ky, kx): the four anchors beside
# it. The rest of its window (itself, the diagonals) are non-anchors, not yet coded: zero.
CROSS_TAPS = ((0, 1), (1, 0), (1, 2), (2, 1))


@dataclass(frozen=True)
class Checkerboard:
    """Index arrays of a (B, H, W) latent grid's two halves, built once per grid size."""

    rows: tuple[np.ndarray, np.ndarray]  # (B, H, W) bool: anchors, non-anchors
    sites: tuple[np.ndarray, np.ndarray]  # flat indexes of each half, C order
    cross: np.ndarray  # (n, 4): per CROSS_TAPS, flat indexes into the 1-padded grid

    @staticmethod
    @functools.lru_cache(maxsize=16)
    def of(b: int, h: int, w: int) -> Checkerboard:
        anchors = anchor_rows(b, h, w)
        rows = (anchors, ~anchors)
        sites = tuple(np.flatnonzero(r) for r in rows)
        bi, i, j = np.unravel_index(sites[1], (b, h, w))
        padded = (b, h + 2, w + 2)
        cross = np.stack(
            [np.ravel_multi_index((bi, i + ky, j + kx), padded) for ky, kx in CROSS_TAPS], axis=1
        )
        return Checkerboard(rows, sites, cross)


class ExactParams:
    """Integer SCCTX network loaded from the shipped tables (names as in the torch model)."""

    def __init__(self, tables: Mapping[str, np.ndarray], groups: Sequence[int]) -> None:
        self.groups = tuple(groups)

        def layer(name: str, signed: bool = False) -> IntConv:
            try:
                t = [tables[f"{name}.{k}"] for k in ("w", "b", "mult", "shift")]
            except KeyError as e:
                raise ValueError(f"weights: missing exact-path table {e.args[0]}") from None
            lo, hi = (-PARAM_MAX, PARAM_MAX) if signed else (0, ACT_MAX)
            return IntConv.from_tables(*t, lo=lo, hi=hi)

        self.hs = [layer(f"scctx.hs.{i}") for i in range(4)]
        n = len(self.groups)
        self.ch_ctx = [[layer(f"scctx.ch_ctx.{k - 1}.{i}") for i in range(2)] for k in range(1, n)]
        self.sp_ctx = [layer(f"scctx.sp_ctx.{k}") for k in range(n)]
        self.agg = [
            [layer(f"scctx.agg.{k}.0"), layer(f"scctx.agg.{k}.1", signed=True)] for k in range(n)
        ]
        # What the coding loop multiplies: the spatial context at non-anchors over its four
        # non-zero taps (columns tap-major), and the first aggregation layer in two: over
        # the hyper and channel-context inputs, once for every site (the anchors' whole
        # sum: their spatial context is zero), and over the non-anchors' spatial context.
        # Same sums, fewer products, no gathered copies of the wide inputs.
        self.sp_cross = [
            conv.select_inputs([(ky * 3 + kx) * g + c for ky, kx in CROSS_TAPS for c in range(g)])
            for conv, g in zip(self.sp_ctx, self.groups, strict=True)
        ]
        # (hyper, channel context or None for group 0, spatial context) columns of agg.k.0
        self.agg_parts = [
            (
                a0.select_inputs(slice(0, 2 * g)),
                a0.select_inputs(slice(2 * g, -2 * g)) if k else None,
                a0.select_inputs(slice(-2 * g, None)),
            )
            for k, ((a0, _), g) in enumerate(zip(self.agg, self.groups, strict=True))
        ]

    def hyper(self, z_q: np.ndarray) -> np.ndarray:
        """h_s: ẑ in 1/64 units (B, h, w, Cz) → hyper features (B, 4h, 4w, 2M)."""
        x = self.hs[0](z_q.astype(np.float64))
        x = pixel_shuffle_nhwc(self.hs[1](x), 2)
        x = pixel_shuffle_nhwc(self.hs[2](x), 2)
        return self.hs[3](x)

    def _params(self, k: int, acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """μ and log2 σ (int64, 1/64) from the first aggregation layer's accumulator."""
        a0, a1 = self.agg[k]
        hidden = a0.requantise(acc)
        out = a1.matmul(hidden.astype(a1.dtype_for(ACT_MAX), copy=False))
        g = self.groups[k]
        return out[:, :g].astype(np.int64), out[:, g:].astype(np.int64)

    def _spatial(self, k: int, y_q: np.ndarray, grid: Checkerboard) -> np.ndarray:
        """The spatial context at the non-anchors, from the anchors' ŷ in ``y_q``."""
        conv = self.sp_cross[k]
        x_max = float(np.abs(y_q).max()) if y_q.size else 0.0
        b, h, w, g = y_q.shape
        yp = np.zeros((b, h + 2, w + 2, g), conv.dtype_for(x_max))
        yp[:, 1:-1, 1:-1] = y_q
        # one gather of the four taps, (n, 4, g) → (n, 4g): tap-major like the weights
        return conv.matmul(yp.reshape(-1, g)[grid.cross].reshape(-1, 4 * g))

    def code_group(
        self,
        k: int,
        hyper: np.ndarray,
        y_prev_q: np.ndarray | None,
        gain_q6: np.ndarray,
        symbols_for: SymbolCallback,
        observe: Observer | None = None,
    ) -> np.ndarray:
        """Code group ``k`` (anchors, then non-anchors); returns its ŷ (B, H, W, g) in 1/64.

        ``observe`` is shown each half's μ and log2 σ (the sender's rate prediction)."""
        g = self.groups[k]
        start = sum(self.groups[:k])
        b, h, w, _ = hyper.shape
        hyp = hyper[..., 2 * start : 2 * (start + g)].reshape(b * h * w, 2 * g)
        gain = gain_q6[start : start + g]
        step = step_q22(gain)
        ch = None
        if k > 0:
            c0, c1 = self.ch_ctx[k - 1]
            ch = c1(c0(y_prev_q)).reshape(b * h * w, -1)
        # the first aggregation layer's sum over the hyper and channel context, everywhere
        dt = self.agg[k][0].dtype_for(ACT_MAX)
        hyper_part, channel_part, spatial_part = self.agg_parts[k]
        context = hyper_part.product(hyp.astype(dt, copy=False))
        if ch is not None:
            context += channel_part.product(ch.astype(dt, copy=False))
        grid = Checkerboard.of(b, h, w)
        y_q = np.zeros((b, h, w, g), dtype=np.int64)
        flat = y_q.reshape(-1, g)
        for half in (0, 1):
            sites = grid.sites[half]
            acc = context[sites]
            if half == 1:
                sp = self._spatial(k, y_q, grid).astype(dt, copy=False)
                acc += spatial_part.product(sp)
            mu, logsigma = self._params(k, acc)
            if observe is not None:
                observe(k, sites, mu, logsigma)
            idx = scale_index(logsigma, gain)
            sym = symbols_for(k, grid.rows[half], mu, idx, step)
            flat[sites] = dequantize_q6(mu, sym, step)
        return y_q
