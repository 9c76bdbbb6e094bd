"""The exact SCCTX parameter path in numpy (NHWC): what both ends run around the coder.

One loop, :meth:`ExactParams.code_group`, serves encoder and decoder: it computes the
parameters of a checkerboard half, hands them to a callback that either quantises and
encodes the true latents or decodes symbols, and continues with the resulting ŷ. The
two ends therefore cannot compute different parameters by construction, and the
arithmetic itself is exact (``exact.py``), so they cannot differ across devices either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

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

__all__ = ["ExactParams", "SymbolCallback", "anchor_rows"]

# (group k, rows (B, H, W) bool, mu_q6 (n, g), scale index (n, g), step_q22 (g,)) -> symbols
SymbolCallback = Callable[[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def anchor_rows(b: int, h: int, w: int) -> np.ndarray:
    """(B, H, W) bool, True at checkerboard anchors ((i + j) even)."""
    i = np.arange(h)[:, None]
    j = np.arange(w)[None, :]
    return np.broadcast_to((i + j) % 2 == 0, (b, h, w))


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

    def hyper(self, z_q: np.ndarray) -> np.ndarray:
        """h_s: ẑ in 1/64 units (B, h, w, Cz) → hyper features (B, 4h, 4w, 2M)."""
        x = self.hs[0](z_q.astype(np.float64))
        x = pixel_shuffle_nhwc(self.hs[1](x), 2)
        x = pixel_shuffle_nhwc(self.hs[2](x), 2)
        return self.hs[3](x)

    def _params(self, k: int, parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        a0, a1 = self.agg[k]
        out = a1.matmul(a0.matmul(np.concatenate(parts, axis=1)))
        g = self.groups[k]
        return out[:, :g].astype(np.int64), out[:, g:].astype(np.int64)

    def code_group(
        self,
        k: int,
        hyper: np.ndarray,
        y_prev_q: np.ndarray | None,
        gain_q6: np.ndarray,
        symbols_for: SymbolCallback,
    ) -> np.ndarray:
        """Code group ``k`` (anchors, then non-anchors); returns its ŷ (B, H, W, g) in 1/64."""
        g = self.groups[k]
        start = sum(self.groups[:k])
        b, h, w, _ = hyper.shape
        hyp = hyper[..., 2 * start : 2 * (start + g)]
        gain = gain_q6[start : start + g]
        step = step_q22(gain)
        ch = None
        if k > 0:
            c0, c1 = self.ch_ctx[k - 1]
            ch = c1(c0(y_prev_q.astype(np.float64)))
        anchors = anchor_rows(b, h, w)
        y_q = np.zeros((b, h, w, g), dtype=np.int64)
        for is_anchor in (True, False):
            rows = anchors if is_anchor else ~anchors
            if is_anchor:
                sp = np.zeros((int(rows.sum()), 2 * g))
            else:
                sp = self.sp_ctx[k](y_q.astype(np.float64), rows)
            parts = [hyp[rows], sp] if ch is None else [hyp[rows], ch[rows], sp]
            mu, logsigma = self._params(k, parts)
            idx = scale_index(logsigma, gain)
            sym = symbols_for(k, rows, mu, idx, step)
            y_q[rows] = dequantize_q6(mu, sym, step)
        return y_q
