"""Exact arithmetic: integer helpers, and numpy vs torch on every exact layer."""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from textboost.codec import exact
from textboost.codec.backends import load_torch_net
from textboost.codec.exact import (
    RATE_MAX,
    dequantize_q6,
    interp_gain_q6,
    pixel_shuffle_nhwc,
    scale_index,
    scale_of_level,
    step_q22,
)
from textboost.codec.params import ExactParams, anchor_rows

DATA = Path(__file__).resolve().parent / "data"


def test_step_table_matches_exp2_within_rounding():
    gains = np.arange(-400, 401)
    exact = step_q22(gains)
    ref = np.exp2(-gains / 64) * 2**22
    assert np.all(np.abs(exact - ref) <= 1.0)


def test_gain_interpolation_hits_anchors_and_is_monotone():
    anchors = np.array([[-96, 0], [-32, 10], [64, 20]])
    assert list(interp_gain_q6(anchors, 0)) == [-96, 0]
    assert list(interp_gain_q6(anchors, RATE_MAX // 2)) == [-32, 10]
    assert list(interp_gain_q6(anchors, RATE_MAX)) == [64, 20]
    vals = [interp_gain_q6(anchors, r)[0] for r in range(0, RATE_MAX + 1, 997)]
    assert vals == sorted(vals)
    with pytest.raises(ValueError, match="rate"):
        interp_gain_q6(anchors, RATE_MAX + 1)


def test_scale_index_follows_log2_sigma():
    # log2 σ_y = 0 (σ 1) with gain 2^1 → σ_sym = 2 → level 8 → index 8 − MIN_LEVEL
    idx = scale_index(np.array([0]), np.array([64]))
    assert scale_of_level(idx[0]) == pytest.approx(2.0)
    assert scale_index(np.array([-10_000]), np.array([0]))[0] == 0


def test_dequantize_is_mu_plus_symbol_step():
    step = step_q22(np.array([0, 64, -64]))  # Δ = 1, 1/2, 2
    y = dequantize_q6(np.array([10, 10, 10]), np.array([3, 3, 3]), step)
    assert list(y) == [10 + 192, 10 + 96, 10 + 384]


def test_pixel_shuffle_matches_torch():
    x = np.arange(2 * 3 * 5 * 8, dtype=np.float64).reshape(2, 3, 5, 8)  # NHWC, C = 2·4
    ref = torch.nn.functional.pixel_shuffle(torch.from_numpy(x).permute(0, 3, 1, 2), 2)
    assert np.array_equal(pixel_shuffle_nhwc(x, 2), ref.permute(0, 2, 3, 1).numpy())


@pytest.fixture(scope="module")
def nets(codec):
    net = load_torch_net(codec.model).double()
    return net, ExactParams(codec.model.exact_tables(), codec.cfg.groups)


def _nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


def _nhwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(0, 2, 3, 1).numpy()


def test_numpy_and_torch_exact_paths_are_bit_identical(nets, codec):
    """Two independent implementations (numpy im2col, torch float64 conv) agree exactly."""
    net, ex = nets
    rng = np.random.default_rng(1)
    cfg = codec.cfg
    z = rng.integers(-6, 7, size=(2, 3, 4, cfg.z_channels)).astype(np.float64)
    with torch.no_grad():
        hyper_t = _nhwc(net.scctx.hyper(_nchw(z)))
    hyper_n = ex.hyper(z)
    assert np.array_equal(hyper_n, hyper_t)
    assert hyper_n.std() > 0  # a live network, not all clamped
    h, w = hyper_n.shape[1:3]
    start = 0
    for k, g in enumerate(cfg.groups):
        y_prev = rng.integers(-800, 800, size=(2, h, w, start)).astype(np.float64)
        anchors = rng.integers(-800, 800, size=(2, h, w, g)).astype(np.float64)
        with torch.no_grad():
            sp_t = _nhwc(net.scctx.spatial_context(k, _nchw(anchors)))
            ch_t = _nhwc(net.scctx.channel_context(k, _nchw(y_prev))) if k else None
        assert np.array_equal(ex.sp_ctx[k](anchors), sp_t)
        if k:
            c0, c1 = ex.ch_ctx[k - 1]
            assert np.array_equal(c1(c0(y_prev)), ch_t)
        hyp = hyper_n[..., 2 * start : 2 * (start + g)]
        with torch.no_grad():
            mu_t, ls_t = net.scctx.params(
                k, _nchw(hyp), None if ch_t is None else _nchw(ch_t), _nchw(sp_t)
            )
        parts = [hyp, sp_t] if ch_t is None else [hyp, ch_t, sp_t]
        flat = [p.reshape(-1, p.shape[-1]) for p in parts]
        mu_n, ls_n = ex._params(k, ex.agg[k][0].product(np.concatenate(flat, axis=1)))
        assert np.array_equal(mu_n, _nhwc(mu_t).reshape(-1, g))
        assert np.array_equal(ls_n, _nhwc(ls_t).reshape(-1, g))
        start += g


def test_exact_path_is_batch_invariant(nets, codec):
    _, ex = nets
    rng = np.random.default_rng(2)
    z = rng.integers(-4, 5, size=(1, 2, 3, codec.cfg.z_channels)).astype(np.float64)
    batch = np.concatenate([z, rng.integers(-4, 5, size=z.shape).astype(np.float64), z])
    one = ex.hyper(z)
    many = ex.hyper(batch)
    assert np.array_equal(many[0], one[0]) and np.array_equal(many[2], one[0])


def _plain_code_group(ex, k, hyper, y_prev, gain, symbols_for):
    """The coding loop as first written: float64 products over every 3×3 tap and a zero
    spatial context at the anchors (the reference the fast loop must equal exactly)."""
    g = ex.groups[k]
    start = sum(ex.groups[:k])
    b, h, w, _ = hyper.shape
    hyp = hyper[..., 2 * start : 2 * (start + g)]
    step = step_q22(gain[start : start + g])

    def full(conv, x, rows=None):
        out = conv.matmul(conv.columns(x.astype(np.float64), rows))
        return out if rows is not None else out.reshape(*x.shape[:3], -1)

    ch = None
    if k:
        c0, c1 = ex.ch_ctx[k - 1]
        ch = full(c1, full(c0, y_prev))
    anchors = anchor_rows(b, h, w)
    y_q = np.zeros((b, h, w, g), dtype=np.int64)
    for rows in (anchors, ~anchors):
        if rows is anchors:
            sp = np.zeros((int(rows.sum()), 2 * g))
        else:
            sp = full(ex.sp_ctx[k], y_q, rows)
        parts = [hyp[rows], sp] if ch is None else [hyp[rows], ch[rows], sp]
        a0, a1 = ex.agg[k]
        out = a1.matmul(a0.matmul(np.concatenate(parts, axis=1)))
        mu, ls = out[:, :g].astype(np.int64), out[:, g:].astype(np.int64)
        idx = scale_index(ls, gain[start : start + g])
        y_q[rows] = dequantize_q6(mu, symbols_for(k, rows, mu, idx, step), step)
    return y_q


@pytest.mark.parametrize("spread", [1.0, 40.0])
def test_fast_coding_loop_equals_the_plain_float64_loop(codec, kodim23, spread):
    """float32 products where they are exact, four spatial taps, narrower anchor layer:
    the same μ, σ index and ŷ as the plain loop. ``spread`` 40 scales the latents far
    enough that the ŷ-input layers must fall back to float64."""
    ex = codec.params
    an = codec.analyse(kodim23[:192, :256])
    rate_q = 40000
    hyper = codec.hyper(codec.quantise_z(an.z, rate_q), rate_q)
    gain = exact.interp_gain_q6(codec.gain_anchors_q6, rate_q)
    y = an.y * spread
    starts = np.cumsum([0, *codec.cfg.groups])
    seen: dict[str, list] = {"fast": [], "plain": []}
    outs = {}
    for name, loop in (("fast", ex.code_group), ("plain", None)):
        y_q: list[np.ndarray] = []
        for k in range(len(codec.cfg.groups)):
            yk = y[..., starts[k] : starts[k + 1]]

            def symbols(k, rows, mu, idx, step, yk=yk, log=seen[name]):
                log.append((mu.copy(), idx.copy()))
                u = (yk[rows] - mu * 2.0**-6) / (step * 2.0**-22)
                return np.floor(u + 0.5).astype(np.int64)

            prev = np.concatenate(y_q, axis=-1) if y_q else None
            args = (k, hyper, prev, gain, symbols)
            y_q.append(loop(*args) if loop else _plain_code_group(ex, *args))
        outs[name] = np.concatenate(y_q, axis=-1)
    assert np.array_equal(outs["fast"], outs["plain"])
    for (mu_f, idx_f), (mu_p, idx_p) in zip(seen["fast"], seen["plain"], strict=True):
        assert np.array_equal(mu_f, mu_p) and np.array_equal(idx_f, idx_p)
    y_max = [np.abs(outs["plain"][..., a:b]).max() for a, b in itertools.pairwise(starts)]
    f64 = [m * conv.l1_max >= 2**24 for m, conv in zip(y_max, ex.sp_cross, strict=True)]
    assert any(f64) == (spread > 1)  # the float64 fallback really ran at spread 40


def test_streams_match_the_pins_written_before_the_fast_loop(codec):
    """Streams and decoded latents of three Kodak crops at three rates, byte for byte as
    the float64 full-tap loop wrote them (tests/data/make_stream_pins.py)."""
    meta = json.loads((DATA / "stream_pins.json").read_text())
    assert meta["model_id"] == codec.model_id.hex()
    spec = importlib.util.spec_from_file_location("pins", DATA / "make_stream_pins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.pins(codec) == {k: list(v) for k, v in meta["streams"].items()}
