"""The rehearsal relay's core, sans-IO: a scenario's channel applied to datagrams in time.

:class:`RelayDirection` takes a datagram and the time it arrived (scenario seconds) and
decides, at once and for good, when it would finish going on air and whether it survives:
it queues behind the frames before it (rate-limited serialisation, ``queue_bytes`` at most
waiting), waits for a contact window that fits a full frame and for the duty-cycle budget,
holds the medium for its time on air (plus session setup and gap on message links; a
datagram larger than the link MTU goes as several parts and arrives only if all do), draws
its fate from the loss models in transmission order, and is due ``delay_s`` after it left.
:meth:`RelayDirection.due` hands out the survivors whose time has come.

The decisions are those of :class:`link_sim.link.LinkDirection` in the simulator, from the
same pieces (``build_phy``, ``build_loss``, :class:`ContactPlan`, :class:`DutyCycle`) and the
same seeds (``SeedSequence([seed, 0])``, one child per direction), so a rehearsal over
loopback sees the channel that run 0 of ``python -m link_sim`` simulates. What the relay
does not model: a half-duplex radio's shared medium (each direction has its own), and the
simulator's pull model (there the sender is asked for frames when the medium is free; here
datagrams arrive when the sender's socket sends them, and wait in the queue).

The socket driver is :mod:`link_sim.proxy`; no clock or socket is read here.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from link_sim.build import build_contacts, build_loss, build_phy
from link_sim.contacts import ContactPlan
from link_sim.duty_cycle import DutyCycle
from link_sim.scenario import ContactsSpec, Direction, Scenario

__all__ = ["Relay", "RelayCounters", "RelayDirection"]


@dataclass(slots=True)
class RelayCounters:
    datagrams_in: int = 0
    bytes_in: int = 0
    delivered: int = 0
    bytes_out: int = 0
    lost: int = 0  # the loss models dropped it (bit errors, Gilbert-Elliott)
    queue_full: int = 0  # more than queue_bytes were waiting: dropped on arrival
    no_contact: int = 0  # no contact window left in the plan
    delay_sum_s: float = 0.0  # arrival to due, over delivered datagrams

    def as_dict(self) -> dict[str, float]:
        out = {k: getattr(self, k) for k in self.__slots__}
        out["mean_delay_s"] = self.delay_sum_s / self.delivered if self.delivered else 0.0
        out["loss_rate"] = self.lost / (self.datagrams_in or 1)
        return out


class RelayDirection:
    """One direction of the channel (see the module docstring).

    Args:
        spec: the scenario's direction (PHY, delay, MTU, loss, duty cycle, sessions).
        plan: its contact windows (scenario seconds).
        seq: the seed of its loss models.
        queue_bytes: the most bytes waiting to go on air; a datagram beyond is dropped.
    """

    def __init__(
        self, spec: Direction, plan: ContactPlan, seq: np.random.SeedSequence, queue_bytes: int
    ) -> None:
        self.phy = build_phy(spec)
        self.loss = build_loss(spec, seq)
        self.delay_s = spec.delay_s
        self.mtu_bytes = spec.mtu_bytes
        self.contacts = plan
        self.duty = None
        if spec.duty_cycle is not None:
            dc = spec.duty_cycle
            self.duty = DutyCycle(dc.fraction, dc.mode, dc.window_s)
        self.setup_s = spec.sessions.setup_s if spec.sessions else 0.0
        self.gap_s = spec.sessions.gap_s if spec.sessions else 0.0
        self.queue_bytes = queue_bytes
        self.counters = RelayCounters()
        self._full_hold_s = self.setup_s + self.phy.airtime_s(self.mtu_bytes)
        self._free_s = 0.0  # when the transmitter is done with what it has
        self._waiting: deque[tuple[float, int]] = deque()  # (start_s, bytes) not yet on air
        self._waiting_bytes = 0
        self._flight: list[tuple[float, int, bytes, float]] = []  # (due, order, data, arrived)
        self._order = itertools.count()

    def _start_s(self, ready_s: float) -> float | None:
        """When a frame ready at ``ready_s`` may start: in a window that a full frame fits,
        within the duty-cycle budget (None: no window is left)."""
        t = ready_s
        while True:
            window = self.contacts.current_or_next(t)
            if window is None:
                return None
            start, end = window
            if t < start:
                t = start
                continue
            if t + self._full_hold_s > end:
                t = end  # a full frame would not finish before loss of signal
                if not math.isfinite(t):
                    return None
                continue
            if self.duty is not None:
                allowed = self.duty.earliest_start(t, self._full_hold_s)
                if allowed > t:
                    t = allowed
                    continue
            return t

    def feed(self, data: bytes, now: float) -> None:
        """A datagram arrived at ``now`` (scenario seconds): queue it and decide its fate."""
        c = self.counters
        c.datagrams_in += 1
        c.bytes_in += len(data)
        while self._waiting and self._waiting[0][0] <= now:
            self._waiting_bytes -= self._waiting.popleft()[1]
        if self._waiting_bytes + len(data) > self.queue_bytes:
            c.queue_full += 1
            return
        start = self._start_s(max(now, self._free_s))
        if start is None:
            c.no_contact += 1
            return
        t, lost = start, False
        n_parts = -(-len(data) // self.mtu_bytes) if data else 1
        for part in range(n_parts):
            part_bytes = min(self.mtu_bytes, len(data) - part * self.mtu_bytes)
            t += self.setup_s
            airtime = self.phy.airtime_s(part_bytes)
            if self.duty is not None:
                self.duty.record(t, airtime)
            t += airtime
            lost = self.loss.lost(part_bytes) or lost
            t += self.gap_s
        self._free_s = t
        self._waiting.append((start, len(data)))
        self._waiting_bytes += len(data)
        if lost:
            c.lost += 1
            return
        due = t - self.gap_s + self.delay_s
        heapq.heappush(self._flight, (due, next(self._order), bytes(data), now))

    def next_due(self) -> float | None:
        """When :meth:`due` next has a datagram (scenario seconds), or None."""
        return self._flight[0][0] if self._flight else None

    def due(self, now: float) -> list[bytes]:
        """The surviving datagrams due by ``now``, in order of arrival at the far end."""
        out = []
        c = self.counters
        while self._flight and self._flight[0][0] <= now:
            due, _, data, arrived = heapq.heappop(self._flight)
            out.append(data)
            c.delivered += 1
            c.bytes_out += len(data)
            c.delay_sum_s += due - arrived
        return out


class Relay:
    """Both directions of a scenario's link: ``forward`` (edge → ground) and ``reverse``
    (ground → edge; None on a one-way link, whose reverse datagrams are counted and dropped
    in ``reverse_dropped``)."""

    def __init__(self, scenario: Scenario, seed: int | None = None, queue_bytes: int = 1 << 16):
        s = scenario
        seeds = np.random.SeedSequence([s.seed if seed is None else seed, 0]).spawn(2)
        plan = build_contacts(s.link.forward.contacts, s.duration_s)
        self.forward = RelayDirection(s.link.forward, plan, seeds[0], queue_bytes)
        self.reverse: RelayDirection | None = None
        if s.link.reverse is not None:
            rev = s.link.reverse.contacts or ContactsSpec(kind="same_as_forward")
            self.reverse = RelayDirection(
                s.link.reverse, build_contacts(rev, s.duration_s, plan), seeds[1], queue_bytes
            )
        self.reverse_dropped = 0

    def next_due(self) -> float | None:
        times = [d.next_due() for d in (self.forward, self.reverse) if d is not None]
        times = [t for t in times if t is not None]
        return min(times, default=None)

    def counters(self) -> dict[str, dict[str, float]]:
        out = {"forward": self.forward.counters.as_dict()}
        if self.reverse is not None:
            out["reverse"] = self.reverse.counters.as_dict()
        else:
            out["reverse"] = {"dropped_one_way": self.reverse_dropped}
        return out
