"""Entropy coding from integer tables: round trips, escapes, table validation."""

from __future__ import annotations

import constriction
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textboost.codec.coder import TableSet, quantize_pmf, range_decoder, stream_bytes
from textboost.codec.weights import gaussian_tables

pytestmark = pytest.mark.edge

TABLES = gaussian_tables()


@given(st.lists(st.floats(0, 1), min_size=4, max_size=60).filter(lambda v: len(v) % 2 == 0))
def test_quantize_pmf_is_a_valid_24_bit_table(p):
    q = quantize_pmf(np.array(p))
    assert q.sum() == 1 << 24 and q.min() >= 1 and q.size == len(p)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 300))
def test_round_trip_with_escapes(seed, n):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(TABLES.pmfs), n)
    # heavy-tailed symbols so that escapes past the table edge occur
    sym = np.round(rng.standard_t(1.5, n) * 3).astype(np.int64)
    enc = constriction.stream.queue.RangeEncoder()
    TABLES.encode(enc, sym, idx)
    out = TABLES.decode(range_decoder(stream_bytes(enc)), idx)
    assert np.array_equal(out, sym)


def test_escape_values_far_outside_the_table():
    idx = np.zeros(5, dtype=np.int64)  # σ ≈ 0.1, table radius 2
    sym = np.array([0, 3, -3, 30_000, -1])
    enc = constriction.stream.queue.RangeEncoder()
    TABLES.encode(enc, sym, idx)
    assert np.array_equal(TABLES.decode(range_decoder(stream_bytes(enc)), idx), sym)


def test_rate_follows_the_model():
    """Symbols drawn from table i cost about its entropy (the tables are used as shipped)."""
    rng = np.random.default_rng(0)
    i = 40
    p = TABLES.pmfs[i][:-1] / 2**24
    t = TABLES.radius[i]
    sym = rng.choice(np.arange(-t, t + 1), size=20_000, p=p / p.sum())
    enc = constriction.stream.queue.RangeEncoder()
    TABLES.encode(enc, sym, np.full(sym.size, i))
    bits = 8 * len(stream_bytes(enc))
    entropy = -(p * np.log2(np.maximum(p, 1e-30))).sum() * sym.size
    assert entropy * 0.98 < bits < entropy * 1.02 + 64


def test_bad_tables_are_refused():
    with pytest.raises(ValueError, match="pmf table 0"):
        TableSet([np.array([1, 2, 3])])
    with pytest.raises(ValueError, match="sum 2\\^24"):
        TableSet([np.array([1, 1, 1, 1])])
