"""Exact arithmetic: integer helpers, and numpy vs torch on every exact layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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
from textboost.codec.params import ExactParams


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
        mu_n, ls_n = ex._params(k, flat)
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
