"""Pass windows from a TLE against SGP4 evaluated directly, with an independent
Earth-fixed conversion (IAU 1982 GMST written out here)."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest
import yaml
from sgp4.api import Satrec, jday

from link_sim.contacts import ContactPlan, passes_from_tle
from tests.helpers import ROOT

CUBESAT = yaml.safe_load((ROOT / "scenarios/cubesat_uhf.yaml").read_text())
TLE = CUBESAT["link"]["forward"]["contacts"]["tle"]
LAT, LON, ALT = 48.15, 11.57, 520.0
START = datetime(2026, 11, 25, tzinfo=timezone.utc)
MASK = 10.0


def _elevation_direct(t_s: float) -> float:
    sat = Satrec.twoline2rv(*TLE)
    jd, fr = jday(2026, 11, 25, 0, 0, t_s)
    err, r, _ = sat.sgp4(jd, fr)
    assert err == 0
    # IAU 1982 GMST (Vallado eq. 3-47), radians
    tut1 = (jd + fr - 2451545.0) / 36525.0
    gmst_s = (67310.54841 + (876600.0 * 3600 + 8640184.812866) * tut1
              + 0.093104 * tut1**2 - 6.2e-6 * tut1**3)
    theta = math.radians((gmst_s % 86400) / 240.0)
    x = r[0] * math.cos(theta) + r[1] * math.sin(theta)
    y = -r[0] * math.sin(theta) + r[1] * math.cos(theta)
    sat_ecef = np.array([x, y, r[2]])
    a, f = 6378.137, 1 / 298.257223563
    e2 = f * (2 - f)
    la, lo = math.radians(LAT), math.radians(LON)
    n = a / math.sqrt(1 - e2 * math.sin(la) ** 2)
    h = ALT / 1000
    st = np.array([(n + h) * math.cos(la) * math.cos(lo), (n + h) * math.cos(la) * math.sin(lo),
                   (n * (1 - e2) + h) * math.sin(la)])
    up = np.array([math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)])
    rho = sat_ecef - st
    return math.degrees(math.asin(rho @ up / np.linalg.norm(rho)))


@pytest.fixture(scope="module")
def plan() -> ContactPlan:
    return passes_from_tle(TLE, lat_deg=LAT, lon_deg=LON, alt_m=ALT, mask_deg=MASK,
                           start_utc=START, duration_s=86400.0)


def test_pass_edges_match_sgp4(plan):
    assert plan.windows and 3 <= len(plan.windows) <= 8  # a 500 km SSO, mid latitude
    for start, end in plan.windows:
        assert 60 < end - start < 15 * 60  # LEO passes above 10°: minutes
        assert _elevation_direct(start - 1.0) < MASK < _elevation_direct(start + 1.0)
        assert _elevation_direct(end + 1.0) < MASK < _elevation_direct(end - 1.0)
        assert _elevation_direct((start + end) / 2) > MASK


def test_no_pass_missed(plan):
    """A 15 s scan with SGP4 finds no time above the mask outside the windows."""
    for t in np.arange(0.0, 86400.0, 15.0):
        inside = any(a <= t <= b for a, b in plan.windows)
        if not inside:
            assert _elevation_direct(float(t)) < MASK + 0.05


def test_contact_plan_rejects_overlap():
    with pytest.raises(ValueError, match="sorted without overlap"):
        ContactPlan(((0.0, 10.0), (5.0, 20.0)))
    assert ContactPlan(((0.0, 10.0), (20.0, 25.0))).open_seconds(5.0, 22.0) == 7.0
