"""A pure-Python range coder that writes and reads constriction's bitstream bit for bit.

constriction (the project's entropy coder) has x86_64 wheels only and no source archive
on PyPI, so an aarch64 edge device (Jetson) may have no build of it. This module is
``constriction.stream.queue.RangeEncoder`` / ``RangeDecoder`` (constriction 0.5.0,
``src/stream/queue.rs``: 32-bit words, 64-bit state, 24-bit probabilities) with the two
models the codec uses:

- :class:`Categorical` from an integer pmf p (each ≥ 1, summing to 2^24): the exact model
  of ``constriction.stream.model.Categorical(p - 1, perfect=False)``;
- :class:`Uniform` (n): ``constriction.stream.model.Uniform(n)``.

``tests/test_portable_coder.py`` proves the identical words against constriction on
random tables and symbols, both ways. A plain Python loop: a fraction of a microsecond
per encoded symbol, about a microsecond per decoded one.
"""

from __future__ import annotations

import bisect

import numpy as np

__all__ = ["PRECISION", "Categorical", "RangeDecoder", "RangeEncoder", "Uniform"]

PRECISION = 24
_WORD = 32
_MASK32 = (1 << 32) - 1
_MASK64 = (1 << 64) - 1
_MIN_RANGE = 1 << (64 - _WORD)


class Categorical:
    """Symbols 0..n-1 with integer probabilities ``pmf`` (≥ 1, summing to 2^24)."""

    def __init__(self, pmf: np.ndarray) -> None:
        p = np.asarray(pmf, dtype=np.int64)
        if p.ndim != 1 or p.size < 2 or p.min() < 1 or int(p.sum()) != 1 << PRECISION:
            raise ValueError("pmf: expected ≥ 2 integers ≥ 1 summing to 2^24")
        self.prob = p
        self.cum = np.concatenate([[0], np.cumsum(p)[:-1]])

    def lookup(self, symbols: np.ndarray) -> tuple[list[int], list[int]]:
        s = np.asarray(symbols, dtype=np.int64).reshape(-1)
        if s.size and (s.min() < 0 or s.max() >= self.prob.size):
            raise ValueError(f"symbol outside 0..{self.prob.size - 1}")
        return self.cum[s].tolist(), self.prob[s].tolist()

    def quantile_table(self):
        cum = self.cum.tolist()
        prob = self.prob.tolist()

        def quantile(q: int) -> tuple[int, int, int]:
            s = bisect.bisect_right(cum, q) - 1
            return s, cum[s], prob[s]

        return quantile


class Uniform:
    """Symbols 0..n-1 equally likely, quantised as constriction's UniformModel<u32, 24>."""

    def __init__(self, n: int) -> None:
        if not 1 < n <= 1 << PRECISION:
            raise ValueError(f"uniform range {n}: expected 2..2^24")
        self.n = n
        self.per_bin = (1 << PRECISION) // n

    def lookup(self, symbols: np.ndarray) -> tuple[list[int], list[int]]:
        s = np.asarray(symbols, dtype=np.int64).reshape(-1)
        if s.size and (s.min() < 0 or s.max() >= self.n):
            raise ValueError(f"symbol outside 0..{self.n - 1}")
        cum = s * self.per_bin
        prob = np.where(s == self.n - 1, (1 << PRECISION) - cum, self.per_bin)
        return cum.tolist(), prob.tolist()

    def quantile_table(self):
        per_bin, last = self.per_bin, self.n - 1

        def quantile(q: int) -> tuple[int, int, int]:
            s = min(q // per_bin, last)
            cum = s * per_bin
            return s, cum, per_bin if s < last else (1 << PRECISION) - cum

        return quantile


class RangeEncoder:
    """``encode(symbols, model)`` in order (a queue), ``get_compressed()`` → uint32 words."""

    def __init__(self) -> None:
        self.lower = 0
        self.range = _MASK64
        self.words: list[int] = []
        self.num_inverted = 0  # > 0: the "inverted situation" (a carry may still come)
        self.first_inverted = 0

    def encode(self, symbols, model) -> None:
        cums, probs = model.lookup(symbols)
        lower, rng, words = self.lower, self.range, self.words
        n_inv, first_inv = self.num_inverted, self.first_inverted
        for cum, prob in zip(cums, probs, strict=True):
            scale = rng >> PRECISION
            rng = scale * prob
            new_lower = (lower + scale * cum) & _MASK64
            if n_inv and ((new_lower + rng) & _MASK64) > new_lower:
                # inverted → normal: the held-back words are known now
                if new_lower < lower:
                    first, rest = (first_inv + 1) & _MASK32, 0
                else:
                    first, rest = first_inv, _MASK32
                words.append(first)
                words.extend([rest] * (n_inv - 1))
                n_inv = 0
            lower = new_lower
            if rng < _MIN_RANGE:
                rng <<= _WORD
                lower_word = lower >> (64 - _WORD)
                lower = (lower << _WORD) & _MASK64
                if n_inv:
                    n_inv += 1
                elif ((lower + rng) & _MASK64) > lower:
                    words.append(lower_word)
                else:
                    n_inv, first_inv = 1, lower_word
        self.lower, self.range = lower, rng
        self.num_inverted, self.first_inverted = n_inv, first_inv

    def _seal(self) -> list[int]:
        if self.range == _MASK64:  # nothing encoded: no words
            return []
        out: list[int] = []
        point = (self.lower + _MIN_RANGE - 1) & _MASK64
        if self.num_inverted:
            if point >= self.lower:
                first, rest = self.first_inverted, _MASK32
            else:
                first, rest = (self.first_inverted + 1) & _MASK32, 0
            out += [first] + [rest] * (self.num_inverted - 1)
        point_word = point >> (64 - _WORD)
        out.append(point_word)
        upper_word = ((self.lower + self.range) & _MASK64) >> (64 - _WORD)
        if upper_word == point_word:
            out.append(0)
        return out

    def get_compressed(self) -> np.ndarray:
        """The words so far, sealed (the encoder can go on, as constriction's can)."""
        return np.array(self.words + self._seal(), dtype=np.uint32)


class RangeDecoder:
    """``RangeDecoder(words).decode(model, n)`` → int32 symbols, as constriction's."""

    def __init__(self, words) -> None:
        self.words = [int(w) for w in np.asarray(words, dtype=np.uint32).reshape(-1)]
        self.pos = 0
        self.lower = 0
        self.range = _MASK64
        point, n = 0, 0
        while n < 2 and self.pos < len(self.words):
            point = (point << _WORD) | self.words[self.pos]
            self.pos += 1
            n += 1
        if n == 1:
            point <<= _WORD
        self.point = point

    def decode(self, model, n: int) -> np.ndarray:
        quantile = model.quantile_table()
        lower, rng, point, pos, words = self.lower, self.range, self.point, self.pos, self.words
        out = np.empty(int(n), dtype=np.int32)
        for i in range(int(n)):
            scale = rng >> PRECISION
            q = ((point - lower) & _MASK64) // scale
            if q >= 1 << PRECISION:
                raise ValueError("invalid data: the compressed words end inconsistently")
            s, cum, prob = quantile(q)
            lower = (lower + scale * cum) & _MASK64
            rng = scale * prob
            if rng < _MIN_RANGE:
                lower = (lower << _WORD) & _MASK64
                rng <<= _WORD
                point = (point << _WORD) & _MASK64
                if pos < len(words):
                    point |= words[pos]
                    pos += 1
            out[i] = s
        self.lower, self.range, self.point, self.pos = lower, rng, point, pos
        return out
