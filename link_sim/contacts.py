"""Contact windows: when a link can carry anything at all.

A plan is a sorted list of ``(start_s, end_s)`` windows in simulation seconds. It comes
from an explicit list in the scenario, or from a TLE and a ground station: SGP4 gives the
satellite in TEME, a rotation by Greenwich mean sidereal time gives Earth-fixed
coordinates (polar motion and the equation of the equinoxes are ignored: well under
0.01° of elevation), and a window is a stretch above the elevation mask. Edges are found
on a coarse grid and refined by bisection to 0.1 s.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
from sgp4.api import Satrec, jday
from sgp4.propagation import gstime

__all__ = ["ContactPlan", "elevation_deg", "passes_from_tle"]

WGS84_A_KM = 6378.137  # WGS 84 semi-major axis
WGS84_F = 1.0 / 298.257223563  # WGS 84 flattening
DAY_S = 86400.0


@dataclass(slots=True)
class ContactPlan:
    """Sorted, non-overlapping windows; ``None`` windows means the link is always up.

    It also keeps the contact clock, seconds of contact elapsed (:meth:`to_contact`,
    :meth:`from_contact`): the clock the protocol objects run on. Retransmission and NAK
    timers only make sense while the link can carry anything, so between passes the
    protocol's clock stands still, as DTN convergence layers suspend their timers outside
    contacts. With an always-up link it is the simulation clock.
    """

    windows: tuple[tuple[float, float], ...] | None = None
    _ends: list[float] = field(init=False, repr=False, default_factory=list)
    _open_before: list[float] = field(init=False, repr=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.windows is None:
            return
        self._ends = [end for _, end in self.windows]
        # contact seconds before each window: open_seconds(0, t) in O(log n)
        self._open_before = [0.0]
        for start, end in self.windows:
            self._open_before.append(self._open_before[-1] + (end - start))
        prev_end = -math.inf
        for start, end in self.windows:
            if not (end > start >= prev_end):
                raise ValueError(
                    f"contact window ({start}, {end}): windows must have end > start and be "
                    "sorted without overlap"
                )
            prev_end = end

    @property
    def always(self) -> bool:
        return self.windows is None

    def current_or_next(self, t_s: float) -> tuple[float, float] | None:
        """The window containing ``t_s``, else the next one; ``None`` when none is left."""
        if self.windows is None:
            return (-math.inf, math.inf)
        i = bisect.bisect_right(self._ends, t_s)
        return self.windows[i] if i < len(self.windows) else None

    def open_seconds(self, t0_s: float, t1_s: float) -> float:
        """Seconds of contact inside ``[t0_s, t1_s]``."""
        if self.windows is None:
            return t1_s - t0_s
        return sum(max(0.0, min(e, t1_s) - max(s, t0_s)) for s, e in self.windows)

    def remaining_s(self, t_s: float) -> float:
        """Contact seconds from ``t_s`` to the end of the current or next window (inf when
        always up, 0 when no window is left)."""
        window = self.current_or_next(t_s)
        return 0.0 if window is None else window[1] - max(t_s, window[0])

    def to_contact(self, t_s: float) -> float:
        """Contact seconds elapsed at simulation time ``t_s``."""
        if self.windows is None:
            return t_s
        i = bisect.bisect_right(self._ends, t_s)  # windows before i have ended by t_s
        if i < len(self.windows):
            return self._open_before[i] + max(0.0, t_s - self.windows[i][0])
        return self._open_before[i]

    def from_contact(self, tc_s: float) -> float:
        """The earliest simulation time at which ``tc_s`` contact seconds have elapsed
        (inf if the plan never gets there)."""
        if self.windows is None:
            return tc_s
        i = bisect.bisect_left(self._open_before, tc_s) - 1  # last window starting before
        if i < 0:
            return self.windows[0][0] if self.windows else math.inf
        if i >= len(self.windows):
            return math.inf
        return self.windows[i][0] + (tc_s - self._open_before[i])


def _station_ecef_km(lat_deg: float, lon_deg: float, alt_m: float) -> np.ndarray:
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    e2 = WGS84_F * (2 - WGS84_F)
    n = WGS84_A_KM / math.sqrt(1 - e2 * math.sin(lat) ** 2)
    alt_km = alt_m / 1000.0
    return np.array(
        [
            (n + alt_km) * math.cos(lat) * math.cos(lon),
            (n + alt_km) * math.cos(lat) * math.sin(lon),
            (n * (1 - e2) + alt_km) * math.sin(lat),
        ]
    )


def elevation_deg(
    sat: Satrec, jd: np.ndarray, fr: np.ndarray, lat_deg: float, lon_deg: float, alt_m: float
) -> np.ndarray:
    """Elevation of ``sat`` above the station's horizon at the given Julian dates (UTC)."""
    err, r_teme, _ = sat.sgp4_array(np.asarray(jd, float), np.asarray(fr, float))
    if np.any(err):
        code = int(err[np.nonzero(err)[0][0]])
        raise ValueError(f"SGP4 propagation failed with error code {code} (decayed or bad TLE)")
    theta = np.array([gstime(a + b) for a, b in zip(jd, fr, strict=True)])
    c, s = np.cos(theta), np.sin(theta)
    x = c * r_teme[:, 0] + s * r_teme[:, 1]
    y = -s * r_teme[:, 0] + c * r_teme[:, 1]
    r_ecef = np.stack([x, y, r_teme[:, 2]], axis=1)
    station = _station_ecef_km(lat_deg, lon_deg, alt_m)
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    up = np.array([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)])
    rho = r_ecef - station
    return np.degrees(np.arcsin(rho @ up / np.linalg.norm(rho, axis=1)))


def passes_from_tle(
    tle: Sequence[str],
    *,
    lat_deg: float,
    lon_deg: float,
    alt_m: float,
    mask_deg: float,
    start_utc: datetime,
    duration_s: float,
    step_s: float = 20.0,
) -> ContactPlan:
    """Windows in ``[0, duration_s]`` (seconds after ``start_utc``) above ``mask_deg``."""
    sat = Satrec.twoline2rv(tle[0], tle[1])
    start = start_utc.astimezone(timezone.utc)
    jd0, fr0 = jday(
        start.year, start.month, start.day, start.hour, start.minute,
        start.second + start.microsecond * 1e-6,
    )

    def elev(t: np.ndarray) -> np.ndarray:
        frac = fr0 + t / DAY_S
        whole = np.floor(frac)
        return elevation_deg(sat, jd0 + whole, frac - whole, lat_deg, lon_deg, alt_m) - mask_deg

    t = np.arange(0.0, duration_s + step_s, step_s)
    t[-1] = min(t[-1], duration_s)
    above = elev(t) > 0

    def edge(lo: float, hi: float) -> float:
        lo_above = bool(elev(np.array([lo]))[0] > 0)
        while hi - lo > 0.1:
            mid = 0.5 * (lo + hi)
            if bool(elev(np.array([mid]))[0] > 0) == lo_above:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    windows: list[tuple[float, float]] = []
    begin = 0.0 if above[0] else None
    for i in range(1, len(t)):
        if above[i] and not above[i - 1]:
            begin = edge(t[i - 1], t[i])
        elif above[i - 1] and not above[i] and begin is not None:
            windows.append((begin, edge(t[i - 1], t[i])))
            begin = None
    if begin is not None:
        windows.append((begin, float(duration_s)))
    return ContactPlan(tuple(windows))
