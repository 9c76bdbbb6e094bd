"""Bjøntegaard delta rate and delta PSNR between two rate–distortion curves.

Bjøntegaard, "Calculation of average PSNR differences between RD-curves" (VCEG-M33, 2001):
fit each curve with a cubic polynomial (log-rate as a function of PSNR for BD-rate, PSNR as a
function of log-rate for BD-PSNR), integrate both fits over the interval where the curves
overlap, and divide the difference of the integrals by the interval length. `method="pchip"`
replaces the cubic by a piecewise-cubic Hermite interpolant (as in the JVET CTC spreadsheet
and recent learned-codec papers), which does not overshoot between points.

Negative BD-rate means the test curve needs fewer bits for the same PSNR than the anchor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.interpolate import PchipInterpolator

__all__ = ["BdMethod", "bd_psnr", "bd_rate"]

BdMethod = Literal["cubic", "pchip"]


def _curve(rate: Sequence[float], psnr: Sequence[float], name: str) -> tuple[np.ndarray, ...]:
    r = np.asarray(rate, dtype=np.float64)
    p = np.asarray(psnr, dtype=np.float64)
    if r.shape != p.shape or r.ndim != 1:
        raise ValueError(
            f"{name}: rate and PSNR must be 1-D of equal length, got {r.shape}, {p.shape}"
        )
    if r.size < 2:
        raise ValueError(f"{name}: need at least 2 points, got {r.size}")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(p))):
        raise ValueError(f"{name}: rate and PSNR must be finite")
    if np.any(r <= 0):
        raise ValueError(f"{name}: rates must be > 0, got {r.tolist()}")
    return np.log10(r), p


def _avg_over_overlap(
    x_a: np.ndarray, y_a: np.ndarray, x_b: np.ndarray, y_b: np.ndarray, method: BdMethod
) -> float:
    """Mean of (fit_b − fit_a) over the overlap of the x ranges, y fitted as a function of x."""
    lo = max(x_a.min(), x_b.min())
    hi = min(x_a.max(), x_b.max())
    if not hi > lo:
        raise ValueError(
            f"curves do not overlap: [{x_a.min():.4g}, {x_a.max():.4g}] vs "
            f"[{x_b.min():.4g}, {x_b.max():.4g}]"
        )
    integrals = []
    for x, y in ((x_a, y_a), (x_b, y_b)):
        if method == "cubic":
            if x.size < 4:
                raise ValueError(f"cubic BD fit needs at least 4 points per curve, got {x.size}")
            poly = np.polyint(np.polyfit(x, y, 3))
            integrals.append(np.polyval(poly, hi) - np.polyval(poly, lo))
        elif method == "pchip":
            order = np.argsort(x)
            xs, ys = x[order], y[order]
            if np.any(np.diff(xs) <= 0):
                raise ValueError(f"pchip BD fit needs distinct abscissae, got {xs.tolist()}")
            integrals.append(PchipInterpolator(xs, ys).integrate(lo, hi))
        else:
            raise ValueError(f'Invalid BD method "{method}": expected "cubic" or "pchip"')
    return float((integrals[1] - integrals[0]) / (hi - lo))


def bd_rate(
    rate_anchor: Sequence[float],
    psnr_anchor: Sequence[float],
    rate_test: Sequence[float],
    psnr_test: Sequence[float],
    method: BdMethod = "cubic",
) -> float:
    """Average rate difference of `test` against `anchor` at equal PSNR, in percent."""
    lr_a, p_a = _curve(rate_anchor, psnr_anchor, "anchor")
    lr_b, p_b = _curve(rate_test, psnr_test, "test")
    mean_dlog = _avg_over_overlap(p_a, lr_a, p_b, lr_b, method)
    return float((10.0**mean_dlog - 1.0) * 100.0)


def bd_psnr(
    rate_anchor: Sequence[float],
    psnr_anchor: Sequence[float],
    rate_test: Sequence[float],
    psnr_test: Sequence[float],
    method: BdMethod = "cubic",
) -> float:
    """Average PSNR difference (dB) of `test` against `anchor` at equal rate."""
    lr_a, p_a = _curve(rate_anchor, psnr_anchor, "anchor")
    lr_b, p_b = _curve(rate_test, psnr_test, "test")
    return _avg_over_overlap(lr_a, p_a, lr_b, p_b, method)
