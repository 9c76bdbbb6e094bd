"""The portable range encoder writes constriction's words exactly (the Jetson path: no
constriction build on aarch64), on random and skewed tables and on the codec's tables."""

from __future__ import annotations

import numpy as np
import pytest

from textboost.codec import portable_coder as pc
from textboost.codec.coder import quantize_pmf

pytestmark = pytest.mark.edge

constriction = pytest.importorskip("constriction")


def _random_pmf(rng: np.random.Generator, n: int, skew: float) -> np.ndarray:
    p = rng.dirichlet(np.full(n, skew))
    return quantize_pmf(p)


def _both(ops):
    ref, got = constriction.stream.queue.RangeEncoder(), pc.RangeEncoder()
    for symbols, pmf, uniform in ops:
        if uniform:
            ref.encode(symbols.astype(np.int32), constriction.stream.model.Uniform(uniform))
            got.encode(symbols, pc.Uniform(uniform))
        else:
            model = constriction.stream.model.Categorical(
                (pmf - 1).astype(np.float64), perfect=False
            )
            ref.encode(symbols.astype(np.int32), model)
            got.encode(symbols, pc.Categorical(pmf))
    return ref.get_compressed(), got.get_compressed()


@pytest.mark.parametrize("seed", range(12))
def test_identical_words_to_constriction(seed):
    rng = np.random.default_rng(seed)
    ops = []
    for _ in range(int(rng.integers(1, 8))):
        if rng.random() < 0.3:
            n = int(rng.choice([2, 3, 32, 1 << int(rng.integers(1, 23)), 1000]))
            ops.append((rng.integers(0, n, int(rng.integers(1, 300))), None, n))
        else:
            n = int(rng.integers(2, 200))
            pmf = _random_pmf(rng, n, float(rng.choice([0.05, 0.5, 5.0])))
            # draw from the pmf itself, plus some rare symbols
            sym = rng.choice(n, size=int(rng.integers(1, 2000)), p=pmf / pmf.sum())
            ops.append((sym, pmf, 0))
    ref, got = _both(ops)
    assert got.dtype == np.uint32
    assert np.array_equal(ref, got)


def test_extreme_tables_and_carries():
    """Near-certain symbols (many words held back: the inverted situation) and
    near-impossible ones (probability 1 in 2^24)."""
    rng = np.random.default_rng(7)
    n = 64
    pmf = np.ones(n, dtype=np.int64)
    pmf[0] = (1 << 24) - (n - 1)
    for _ in range(5):
        sym = np.where(rng.random(5000) < 0.02, rng.integers(1, n, 5000), 0)
        ref, got = _both([(sym, pmf, 0)])
        assert np.array_equal(ref, got)
    assert np.array_equal(*_both([(np.arange(n), pmf, 0)]))
    # symbol by symbol, the inverted situation is entered and left again (a late carry)
    enc, model = pc.RangeEncoder(), pc.Categorical(pmf)
    inverted = left = 0
    sym = np.where(rng.random(3000) < 0.05, rng.integers(1, n, 3000), 0)
    for s in sym:
        before = enc.num_inverted
        enc.encode([s], model)
        inverted += enc.num_inverted > 0
        left += before > 0 and enc.num_inverted == 0
    assert inverted and left
    ref = constriction.stream.queue.RangeEncoder()
    ref.encode(sym.astype(np.int32), constriction.stream.model.Categorical(
        (pmf - 1).astype(np.float64), perfect=False))  # fmt: skip
    assert np.array_equal(ref.get_compressed(), enc.get_compressed())
    assert _both([])[1].size == 0  # nothing encoded: no words


def test_codec_tables_and_decode_with_constriction():
    from textboost.codec.weights import ModelFile

    m = ModelFile.load()
    tables = m.y_tables().pmfs[::7]
    rng = np.random.default_rng(3)
    ops = []
    for pmf in tables:
        ops.append((rng.choice(pmf.size, size=300, p=pmf / pmf.sum()), pmf, 0))
    ref, got = _both(ops)
    assert np.array_equal(ref, got)
    dec = constriction.stream.queue.RangeDecoder(got)
    for symbols, pmf, _ in ops:
        model = constriction.stream.model.Categorical((pmf - 1).astype(np.float64), perfect=False)
        assert np.array_equal(dec.decode(model, symbols.size), symbols)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2\\^24"):
        pc.Categorical(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="outside"):
        pc.RangeEncoder().encode(np.array([5]), pc.Uniform(4))


@pytest.mark.parametrize("seed", range(8))
def test_portable_decoder_reads_constriction_streams(seed):
    rng = np.random.default_rng(100 + seed)
    ops = []
    for _ in range(4):
        if rng.random() < 0.3:
            n = int(rng.choice([2, 32, 1 << int(rng.integers(1, 23)), 999]))
            ops.append((rng.integers(0, n, int(rng.integers(1, 200))), None, n))
        else:
            n = int(rng.integers(2, 120))
            pmf = _random_pmf(rng, n, float(rng.choice([0.05, 0.5, 5.0])))
            ops.append((rng.choice(n, size=int(rng.integers(1, 1500)), p=pmf / pmf.sum()), pmf, 0))
    ref, _ = _both(ops)
    dec = pc.RangeDecoder(ref)
    for symbols, pmf, uniform in ops:
        model = pc.Uniform(uniform) if uniform else pc.Categorical(pmf)
        assert np.array_equal(dec.decode(model, symbols.size), symbols)


def test_the_codec_on_the_portable_coder_reproduces_the_reference_stream():
    """The whole codec with TEXTBOOST_CODER=portable: the committed reference .tbx comes
    out byte for byte and decodes to the recorded pixels (tests/test_reference_stream.py)."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO, TORCH

    env = {**os.environ, "TEXTBOOST_CODER": "portable"}
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_reference_stream.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:]
    assert ("3 passed" if TORCH else "2 passed, 1 skipped") in r.stdout  # pixels need torch
