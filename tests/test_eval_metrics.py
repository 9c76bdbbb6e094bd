"""PSNR and MS-SSIM against values computed by hand (explicit loops, closed forms)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from textboost.codec.image import psnr_db
from textboost.eval.metrics import (
    MS_SSIM_WEIGHTS,
    gaussian_window_1d,
    ms_ssim,
    ssim_terms,
)

C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2
TIGHT = 1e-10


def _hand_ssim(x: np.ndarray, y: np.ndarray, size: int, sigma: float) -> tuple[float, float]:
    """SSIM and c·s means by direct weighted sums over every valid window position."""
    r = np.arange(size) - (size - 1) / 2
    g = np.array([math.exp(-(v * v) / (2 * sigma * sigma)) for v in r])
    w = np.outer(g, g) / np.outer(g, g).sum()
    s_vals, cs_vals = [], []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            px, py = x[i : i + size, j : j + size], y[i : i + size, j : j + size]
            mx, my = (w * px).sum(), (w * py).sum()
            vx = (w * (px - mx) ** 2).sum()
            vy = (w * (py - my) ** 2).sum()
            cxy = (w * (px - mx) * (py - my)).sum()
            cs = (2 * cxy + C2) / (vx + vy + C2)
            s_vals.append((2 * mx * my + C1) / (mx * mx + my * my + C1) * cs)
            cs_vals.append(cs)
    return float(np.mean(s_vals)), float(np.mean(cs_vals))


def test_psnr_one_differing_sample():
    a = np.zeros((2, 2, 3), np.uint8)
    b = a.copy()
    b[1, 0, 2] = 10  # MSE = 100 / 12
    assert psnr_db(a, b) == pytest.approx(10 * math.log10(255**2 * 12 / 100), abs=TIGHT)


def test_psnr_identical_is_inf_and_shapes_must_match():
    a = np.full((4, 4, 3), 7, np.uint8)
    assert psnr_db(a, a) == math.inf
    with pytest.raises(ValueError, match="differ in shape"):
        psnr_db(a, a[:3])


def test_gaussian_window_is_normalised_and_symmetric():
    g = gaussian_window_1d(11, 1.5)
    assert g.sum() == pytest.approx(1.0, abs=TIGHT)
    np.testing.assert_allclose(g, g[::-1])
    assert g[5] / g[4] == pytest.approx(math.exp(1 / (2 * 1.5**2)), rel=TIGHT)


def test_ssim_of_two_constant_images_is_the_luminance_term():
    x = np.full((11, 11), 100.0)
    y = np.full((11, 11), 120.0)
    s, cs = ssim_terms(x, y, gaussian_window_1d(11, 1.5))
    assert cs == pytest.approx(1.0, abs=TIGHT)
    assert s == pytest.approx((2 * 100 * 120 + C1) / (100**2 + 120**2 + C1), abs=TIGHT)


@pytest.mark.parametrize("shape", [(11, 11), (13, 15)])
def test_ssim_terms_match_direct_weighted_sums(shape):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, shape).astype(np.float64)
    y = np.clip(x + rng.normal(0, 25, shape), 0, 255)
    got = ssim_terms(x, y, gaussian_window_1d(11, 1.5))
    want = _hand_ssim(x, y, 11, 1.5)
    assert got == pytest.approx(want, abs=1e-9)


def test_two_scale_ms_ssim_matches_hand_combination():
    """Odd sizes: the coarse scale repeats the last row/column before 2×2 averaging."""
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (7, 9, 1)).astype(np.float64)
    y = np.clip(x + rng.normal(0, 30, x.shape), 0, 255)
    weights = (0.4, 0.6)
    _, cs1 = _hand_ssim(x[..., 0], y[..., 0], 3, 1.5)

    def down(a):
        a = np.vstack([a, a[-1:]])  # 7 -> 8 rows; 9 -> 10 columns
        a = np.hstack([a, a[:, -1:]])
        return np.array(
            [[a[2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean() for j in range(5)] for i in range(4)]
        )

    s2, _ = _hand_ssim(down(x[..., 0]), down(y[..., 0]), 3, 1.5)
    want = max(cs1, 0) ** 0.4 * max(s2, 0) ** 0.6
    assert ms_ssim(x, y, weights=weights, window_size=3) == pytest.approx(want, abs=1e-9)


def test_ms_ssim_averages_channels():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (8, 8, 2)).astype(np.uint8)
    y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
    kw = {"weights": (0.5, 0.5), "window_size": 3}
    per_channel = [ms_ssim(x[..., c], y[..., c], **kw) for c in range(2)]
    assert ms_ssim(x, y, **kw) == pytest.approx(np.mean(per_channel), abs=TIGHT)


def test_standard_ms_ssim_identity_and_degradation():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (176, 180, 3)).astype(np.uint8)
    assert len(MS_SSIM_WEIGHTS) == 5
    assert ms_ssim(x, x) == pytest.approx(1.0, abs=TIGHT)
    noisy = np.clip(x + rng.normal(0, 10, x.shape), 0, 255).astype(np.uint8)
    noisier = np.clip(x + rng.normal(0, 40, x.shape), 0, 255).astype(np.uint8)
    assert 0 < ms_ssim(x, noisier) < ms_ssim(x, noisy) < 1


def test_ms_ssim_rejects_images_below_the_coarsest_window():
    x = np.zeros((175, 200, 3), np.uint8)
    with pytest.raises(ValueError, match=">= 176"):
        ms_ssim(x, x)
