"""Duty-cycle limits on time on air, as ETSI EN 300 220 sets them for SRD bands.

Two ways to enforce a fraction ``d`` (0.01 = 1 % on LoRa EU868 sub-band g1):

- ``sliding``: the time on air inside any window of ``window_s`` (one hour) stays at or
  below ``d * window_s``; a transmitter may burst, then must wait.
- ``off_time``: after each transmission of ``T`` seconds the transmitter stays silent for
  ``T * (1/d - 1)``, the per-transmission rule LoRaWAN stacks apply.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DutyCycle"]


@dataclass(slots=True)
class DutyCycle:
    fraction: float
    mode: Literal["sliding", "off_time"] = "sliding"
    window_s: float = 3600.0
    _history: deque[tuple[float, float]] = field(default_factory=deque, repr=False)
    _used_s: float = 0.0
    _next_free_s: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"duty cycle fraction {self.fraction}: expected 0 < d <= 1")

    def earliest_start(self, now_s: float, airtime_s: float) -> float:
        """Earliest time ≥ ``now_s`` at which a transmission of ``airtime_s`` is allowed."""
        if self.fraction >= 1.0:
            return now_s
        if self.mode == "off_time":
            return max(now_s, self._next_free_s)
        budget = self.fraction * self.window_s
        if airtime_s > budget:
            raise ValueError(
                f"one transmission of {airtime_s:.3f} s exceeds the duty-cycle budget of "
                f"{budget:.3f} s per {self.window_s:.0f} s"
            )
        # Air time counted in (t + airtime - window, t + airtime] must stay within budget.
        t = now_s
        self._expire(t + airtime_s - self.window_s)
        while self._used_s + airtime_s > budget + 1e-9:
            # Wait until the oldest transmission leaves the window, then forget it.
            start, dur = self._history.popleft()
            self._used_s -= dur
            t = max(t, start + dur + self.window_s - airtime_s)
        return t

    def record(self, start_s: float, airtime_s: float) -> None:
        """Account a transmission that starts at ``start_s`` and lasts ``airtime_s``."""
        if self.mode == "off_time":
            self._next_free_s = start_s + airtime_s / self.fraction
            return
        self._history.append((start_s, airtime_s))
        self._used_s += airtime_s

    def _expire(self, horizon_s: float) -> None:
        # Transmissions that ended by ``horizon_s`` no longer count (the window is one hour
        # of the transmitter's own history; a transmission counts whole until it has ended).
        while self._history and self._history[0][0] + self._history[0][1] <= horizon_s:
            _, dur = self._history.popleft()
            self._used_s -= dur
