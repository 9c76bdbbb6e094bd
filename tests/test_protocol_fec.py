"""Reed–Solomon erasure coding across frames (textboost.protocol.fec)."""

from __future__ import annotations

import numpy as np
import pytest
import reedsolo
from hypothesis import given, settings
from hypothesis import strategies as st

from textboost.protocol import FrameError
from textboost.protocol.fec import decode_group, encode_group, row_for, unpack_row

pytestmark = pytest.mark.edge


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=12), st.integers(1, 5))
def test_matrix_encoder_equals_reedsolo_per_column(rows, m):
    width = max(map(len, rows))
    padded = [r.ljust(width, b"\0") for r in rows]
    rs = reedsolo.RSCodec(m)
    expected = [bytearray(width) for _ in range(m)]
    for j in range(width):
        cw = rs.encode(bytes(r[j] for r in padded))
        for i in range(m):
            expected[i][j] = cw[len(rows) + i]
    assert encode_group(rows, m) == [bytes(e) for e in expected]


@pytest.mark.parametrize(("n", "m"), [(1, 1), (8, 2), (10, 4)])
def test_any_m_erasures_are_recovered(n, m):
    rng = np.random.default_rng(n * 10 + m)
    rows = [row_for(0, rng.bytes(int(rng.integers(1, 60)))) for _ in range(n)]
    parity = encode_group(rows, m)
    for trial in range(20):
        lost = set(rng.choice(n + m, size=m, replace=False).tolist())
        got_rows = [None if i in lost else r for i, r in enumerate(rows)]
        got_par = [None if n + i in lost else p for i, p in enumerate(parity)]
        out = decode_group(got_rows, got_par)
        assert [unpack_row(o) for o in out] == [unpack_row(r) for r in rows], trial
    # One erasure too many: not recoverable, says so (None) instead of guessing.
    assert decode_group([None] * (m + 1) + rows[m + 1 :], parity) is None


def test_every_erasure_pattern_of_a_small_group():
    from itertools import combinations

    rng = np.random.default_rng(9)
    n, m = 5, 3
    rows = [row_for(i % 2, rng.bytes(20)) for i in range(n)]
    parity = encode_group(rows, m)
    for k in range(m + 1):
        for lost in combinations(range(n + m), k):
            got = decode_group(
                [None if i in lost else r for i, r in enumerate(rows)],
                [None if n + i in lost else p for i, p in enumerate(parity)],
            )
            assert got == rows, lost


def test_bad_parity_rows_raise_frame_error():
    rows = [row_for(0, b"abc"), row_for(1, b"de")]
    parity = encode_group(rows, 2)
    with pytest.raises(FrameError, match="parity_width"):
        decode_group([None, rows[1]], [parity[0], parity[1] + b"x"])
    with pytest.raises(FrameError, match="row_length"):
        unpack_row(b"\x00\x00\x09abc")
