"""Bjøntegaard deltas on synthetic curves whose answer is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from textboost.eval.bd import bd_psnr, bd_rate

RATES = np.array([0.01, 0.02, 0.03, 0.05, 0.08, 0.12])
PSNR = np.array([21.0, 22.6, 23.5, 24.7, 25.9, 27.0])  # concave, like a real RD curve
METHODS = ("cubic", "pchip")


@pytest.mark.parametrize("method", METHODS)
def test_rate_times_0_8_is_minus_20_percent(method):
    assert bd_rate(RATES, PSNR, RATES * 0.8, PSNR, method=method) == pytest.approx(-20.0, abs=1e-9)
    assert bd_rate(RATES * 0.8, PSNR, RATES, PSNR, method=method) == pytest.approx(25.0, abs=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_psnr_plus_one_is_plus_one_db(method):
    assert bd_psnr(RATES, PSNR, RATES, PSNR + 1, method=method) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_log_linear_curves_have_exact_deltas(method):
    """PSNR = 10·log10(R) + c: +1 dB equals a rate factor of 10^-0.1 (−20.57 %)."""
    r = np.geomspace(0.01, 0.15, 6)
    p_a = 10 * np.log10(r) + 50
    assert bd_psnr(r, p_a, r, p_a + 1, method=method) == pytest.approx(1.0, abs=1e-9)
    want = (10**-0.1 - 1) * 100
    assert bd_rate(r, p_a, r, p_a + 1, method=method) == pytest.approx(want, abs=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_identical_curves_give_zero(method):
    assert bd_rate(RATES, PSNR, RATES, PSNR, method=method) == pytest.approx(0.0, abs=1e-9)
    assert bd_psnr(RATES, PSNR, RATES, PSNR, method=method) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_only_the_overlap_counts(method):
    """A test curve reaching further than the anchor is compared over the shared range only."""
    r_a = np.geomspace(0.02, 0.08, 5)
    r_b = np.geomspace(0.005, 0.3, 9)
    assert bd_psnr(
        r_a, 10 * np.log10(r_a) + 50, r_b, 10 * np.log10(r_b) + 51.5, method=method
    ) == pytest.approx(1.5, abs=1e-9)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="do not overlap"):
        bd_rate(RATES, PSNR, RATES, PSNR + 10)
    with pytest.raises(ValueError, match="at least 4 points"):
        bd_rate(RATES[:3], PSNR[:3], RATES[:3], PSNR[:3], method="cubic")
    with pytest.raises(ValueError, match="rates must be > 0"):
        bd_psnr([0.0, 0.1], [20, 21], [0.05, 0.1], [20, 21])
    with pytest.raises(ValueError, match="Invalid BD method"):
        bd_psnr(RATES, PSNR, RATES, PSNR, method="linear")  # type: ignore[arg-type]
