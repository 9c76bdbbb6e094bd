"""Entropy coding with constriction's range coder from shipped integer probability tables.

Each table is an integer pmf summing to 2^24 over the symbols −T..T plus one escape
symbol; constriction codes ``Categorical(p − 1, perfect=False)`` with exactly p (see
REFERENCES.md), so both ends use identical probabilities without any float model.
Symbols are coded grouped by table (one vectorised call per table), in an order both
ends derive from the table indexes alone. Escaped values follow, Exp-Golomb coded.

Where constriction is not installed (aarch64: no wheel, no source archive on PyPI), or
with ``TEXTBOOST_CODER=portable``, :mod:`textboost.codec.portable_coder` codes instead:
the same words, bit for bit, in pure Python.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence

import numpy as np

from textboost.bitstream.container import BitstreamError
from textboost.codec import portable_coder

try:
    import constriction
except ImportError:  # an edge device without a constriction build: the portable coder
    constriction = None

__all__ = [
    "PORTABLE",
    "PRECISION",
    "TableSet",
    "new_range_encoder",
    "quantize_pmf",
    "range_decoder",
    "stream_bytes",
]

PRECISION = 24
_TOTAL = 1 << PRECISION
PORTABLE = constriction is None or os.environ.get("TEXTBOOST_CODER") == "portable"


def _uniform(n: int):
    if PORTABLE:
        return portable_coder.Uniform(n)
    return constriction.stream.model.Uniform(n)


def _categorical(p: np.ndarray):
    """Codes with exactly the integer pmf ``p`` (see the module docstring)."""
    if PORTABLE:
        return portable_coder.Categorical(p)
    return constriction.stream.model.Categorical((p - 1).astype(np.float64), perfect=False)


def new_range_encoder():
    """An empty range encoder (constriction's, or the portable one that writes the same)."""
    if PORTABLE:
        return portable_coder.RangeEncoder()
    return constriction.stream.queue.RangeEncoder()


_EG_BITS = _uniform(32)
_SIGN = _uniform(2)


def quantize_pmf(p: np.ndarray) -> np.ndarray:
    """Integer pmf (int64, each ≥ 1, summing to 2^24) closest in spirit to float pmf ``p``."""
    p = np.asarray(p, dtype=np.float64)
    p = np.maximum(p, 0) / max(p.sum(), 1e-300)
    n = p.size
    q = 1 + np.floor(p * (_TOTAL - n)).astype(np.int64)
    q[np.argmax(q)] += _TOTAL - q.sum()
    return q


class TableSet:
    """A list of pmf tables, table i covering symbols −T_i..T_i plus an escape."""

    def __init__(self, pmfs: Sequence[np.ndarray]) -> None:
        self.pmfs = [np.asarray(p, dtype=np.int64) for p in pmfs]
        for i, p in enumerate(self.pmfs):
            if p.size < 4 or p.size % 2 or p.min() < 1 or p.sum() != _TOTAL:
                raise ValueError(
                    f"pmf table {i}: expected even length ≥ 4 (2T+1 symbols and an escape), "
                    "entries ≥ 1, sum 2^24"
                )
        self.radius = np.array([(p.size - 2) // 2 for p in self.pmfs], dtype=np.int64)
        self.models = [_categorical(p) for p in self.pmfs]

    @classmethod
    def from_flat(cls, flat: np.ndarray, offsets: np.ndarray) -> TableSet:
        return cls([flat[a:b] for a, b in itertools.pairwise(offsets)])

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        offsets = np.cumsum([0, *(p.size for p in self.pmfs)])
        return np.concatenate(self.pmfs).astype(np.int32), offsets.astype(np.int64)

    def _runs(self, indexes: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
        """Stable order grouping symbols by table, and (table, start, end) of each run."""
        idx = indexes.reshape(-1).astype(np.uint8 if len(self.pmfs) <= 256 else np.int32)
        order = np.argsort(idx, kind="stable")  # radix sort for small integer types
        # each table's run ends where the sorted indexes pass it
        ends = np.searchsorted(idx[order], np.arange(1, len(self.pmfs) + 1))
        starts = np.concatenate(([0], ends[:-1]))
        used = np.flatnonzero(ends > starts)
        runs = zip(used.tolist(), starts[used].tolist(), ends[used].tolist(), strict=True)
        return order, list(runs)

    def encode(
        self, enc: constriction.stream.queue.RangeEncoder, symbols: np.ndarray, indexes: np.ndarray
    ) -> None:
        """Append ``symbols`` (ints) coded with tables ``indexes`` (same shape)."""
        order, runs = self._runs(indexes)
        sym = symbols.reshape(-1).astype(np.int64, copy=False)
        t = self.radius[indexes.reshape(-1)]
        codes = sym + t  # the table's symbol: 0..2T, or an escape (below 0 or above 2T)
        esc = codes.view(np.uint64) > (2 * t).view(np.uint64)
        codes = codes.astype(np.int32)[order]
        escapes = bool(esc.any())
        if escapes:
            esc = esc[order]
            codes[esc] = (2 * t[order] + 1)[esc]
        for u, a, b in runs:
            enc.encode(codes[a:b], self.models[u])
        if escapes:  # in table order, as the decoder finds them
            v, te = sym[order][esc], t[order][esc]
            for e in (v - np.sign(v) * te).tolist():
                _encode_escape(enc, e)

    def decode(
        self, dec: constriction.stream.queue.RangeDecoder, indexes: np.ndarray
    ) -> np.ndarray:
        """Inverse of :meth:`encode`: symbols of the shape of ``indexes``."""
        order, runs = self._runs(indexes)
        sym = np.empty(order.size, dtype=np.int64)
        esc_pos: list[np.ndarray] = []
        esc_table: list[np.ndarray] = []
        for u, a, b in runs:
            t = self.radius[u]
            codes = np.asarray(dec.decode(self.models[u], int(b - a)), dtype=np.int64)
            sym[a:b] = codes - t
            e = np.nonzero(codes == 2 * t + 1)[0]
            if e.size:
                esc_pos.append(a + e)
                esc_table.append(np.full(e.size, u))
        for pos, u in (
            zip(*(np.concatenate(x) for x in (esc_pos, esc_table)), strict=True) if esc_pos else ()
        ):
            t = self.radius[u]
            v = _decode_escape(dec)
            sym[pos] = v + np.sign(v) * t
        out = np.empty_like(sym)
        out[order] = sym
        return out.reshape(indexes.shape)


def _encode_escape(enc: constriction.stream.queue.RangeEncoder, v: int) -> None:
    """Non-zero v = s ∓ T (distance past the table edge) as Exp-Golomb(|v| − 1) + sign."""
    m = abs(v)
    n = m.bit_length() - 1
    enc.encode(np.array([n], dtype=np.int32), _EG_BITS)
    if n:
        enc.encode(np.array([m - (1 << n)], dtype=np.int32), _uniform(1 << n))
    enc.encode(np.array([int(v < 0)], dtype=np.int32), _SIGN)


def _decode_escape(dec: constriction.stream.queue.RangeDecoder) -> int:
    n = int(dec.decode(_EG_BITS, 1)[0])
    if n > 23:
        raise BitstreamError(f"escape code length {n} > 23 bits (corrupt stream)")
    m = 1 << n
    if n:
        m += int(dec.decode(_uniform(1 << n), 1)[0])
    neg = int(dec.decode(_SIGN, 1)[0])
    return -m if neg else m


def stream_bytes(enc: constriction.stream.queue.RangeEncoder) -> bytes:
    """The encoder's words as big-endian bytes with trailing zero bytes dropped."""
    words = enc.get_compressed()
    return words.astype(">u4").tobytes().rstrip(b"\x00")


def range_decoder(data: bytes) -> constriction.stream.queue.RangeDecoder:
    """Decoder over bytes from :func:`stream_bytes` (the dropped zeros restored)."""
    pad = (-len(data)) % 4
    words = np.frombuffer(data + b"\x00" * pad, dtype=">u4").astype(np.uint32)
    if PORTABLE:
        return portable_coder.RangeDecoder(words)
    return constriction.stream.queue.RangeDecoder(words)
