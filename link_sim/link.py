"""One direction of a link as two simpy processes: a transmitter and the propagation path.

The transmitter owns the medium: it waits for a contact window, for the duty-cycle budget
and (on message links) for a session, then asks its source for one frame (``pull``), holds
the medium for the frame's time on air and hands the frame to the propagation process.
Propagation is its own process so a long one-way delay (GEO, deep space) never stalls the
transmitter: frames are in flight back to back, each arriving ``delay_s`` after it left.
The loss models decide each frame's fate in transmission order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import simpy

from link_sim.channel import LossModel
from link_sim.contacts import ContactPlan
from link_sim.duty_cycle import DutyCycle
from link_sim.phy import LoraPhy, RatePhy

__all__ = ["FrameLog", "LinkDirection", "MessageSessions", "Signal"]


class Signal:
    """A re-armable wake-up: ``wait()`` gives an event that the next ``fire()`` triggers."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self._event = env.event()

    def wait(self) -> simpy.Event:
        return self._event

    def fire(self) -> None:
        if not self._event.triggered:
            self._event.succeed()
        self._event = self.env.event()


@dataclass(frozen=True, slots=True)
class MessageSessions:
    """Message-based access (Iridium SBD): every frame is one message sent in its own
    session, which costs ``setup_s`` before it and ``gap_s`` after it."""

    setup_s: float
    gap_s: float


@dataclass(slots=True)
class FrameLog:
    """What went on air, kept per frame for utilisation figures and the timeline plot."""

    start_s: list[float] = field(default_factory=list)
    airtime_s: list[float] = field(default_factory=list)
    n_bytes: list[int] = field(default_factory=list)
    lost: list[bool] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return len(self.start_s)

    @property
    def busy_s(self) -> float:
        return math.fsum(self.airtime_s)


class LinkDirection:
    """A simplex link: ``pull(now, max_bytes)`` supplies frames, ``deliver(frame, now)``
    receives the ones that survive. Call :meth:`wake` when the source has new frames.
    Two directions given the same ``medium`` (a capacity-1 resource) never transmit at
    once: a half-duplex radio."""

    def __init__(
        self,
        env: simpy.Environment,
        *,
        name: str,
        phy: RatePhy | LoraPhy,
        delay_s: float,
        mtu_bytes: int,
        loss: LossModel,
        contacts: ContactPlan,
        duty_cycle: DutyCycle | None,
        sessions: MessageSessions | None,
        pull: Callable[[float, int], list[bytes]],
        deliver: Callable[[bytes, float], None],
        medium: simpy.Resource | None = None,
    ) -> None:
        self.env = env
        self.name = name
        self.phy = phy
        self.delay_s = delay_s
        self.mtu_bytes = mtu_bytes
        self.loss = loss
        self.contacts = contacts
        self.duty_cycle = duty_cycle
        self.sessions = sessions
        self.medium = medium  # shared by both directions of a half-duplex radio
        self.pull = pull
        self.deliver = deliver
        self.log = FrameLog()
        self._signal = Signal(env)
        self._air: simpy.Store = simpy.Store(env)
        env.process(self._transmitter())
        env.process(self._propagation())

    def wake(self) -> None:
        self._signal.fire()

    def hold_s(self, n_bytes: int) -> float:
        """Seconds the medium is held for a frame: session setup plus time on air."""
        setup = self.sessions.setup_s if self.sessions else 0.0
        return setup + self.phy.airtime_s(n_bytes)

    def _transmitter(self):
        env = self.env
        full_hold_s = self.hold_s(self.mtu_bytes)
        while True:
            window = self.contacts.current_or_next(env.now)
            if window is None:
                return  # no contact left in the plan
            start_s, end_s = window
            if env.now < start_s:
                yield env.timeout(start_s - env.now)
                continue
            if env.now + full_hold_s > end_s:
                # A full frame would not finish before loss of signal: wait for the next pass.
                yield env.timeout(end_s - env.now)
                continue
            if self.duty_cycle is not None:
                allowed_s = self.duty_cycle.earliest_start(env.now, full_hold_s)
                if allowed_s > env.now:
                    yield env.timeout(allowed_s - env.now)
                    continue
            frames = self.pull(env.now, self.mtu_bytes)
            if not frames:
                wait = self._signal.wait()
                if math.isfinite(end_s):
                    wait = wait | env.timeout(end_s - env.now)
                yield wait
                continue
            for frame in frames:
                yield from self._send(frame)

    def _send(self, frame: bytes):
        env = self.env
        # A frame larger than this link's MTU (a NAK on a narrower reverse link) goes as
        # several messages; it arrives only if every part does.
        n_parts = -(-len(frame) // self.mtu_bytes)
        lost = False
        request = self.medium.request() if self.medium is not None else None
        if request is not None:
            yield request  # half duplex: wait until the other side stops talking
        for part in range(n_parts):
            part_bytes = min(self.mtu_bytes, len(frame) - part * self.mtu_bytes)
            if self.sessions:
                yield env.timeout(self.sessions.setup_s)
            airtime = self.phy.airtime_s(part_bytes)
            start = env.now
            yield env.timeout(airtime)
            if self.duty_cycle is not None:
                self.duty_cycle.record(start, airtime)
            part_lost = self.loss.lost(part_bytes)
            lost = lost or part_lost
            log = self.log
            log.start_s.append(start)
            log.airtime_s.append(airtime)
            log.n_bytes.append(part_bytes)
            log.lost.append(part_lost)
            if self.sessions:
                yield env.timeout(self.sessions.gap_s)
        if request is not None:
            self.medium.release(request)
        self._air.put((env.now + self.delay_s, frame, lost))

    def _propagation(self):
        env = self.env
        while True:
            arrival_s, frame, lost = yield self._air.get()
            if arrival_s > env.now:
                yield env.timeout(arrival_s - env.now)
            if not lost:
                self.deliver(frame, env.now)
