"""Both ends of the protocol joined by a lossless, instant link, for the protocol tests:
no sockets, the clock advanced by the test."""

from __future__ import annotations

from textboost.protocol import Event, Receiver, Sender


def exchange(
    s: Sender,
    r: Receiver,
    now: float = 0.0,
    *,
    step_s: float = 1.0,
    rounds: int = 20,
    timers: bool = False,
) -> tuple[list[bytes], list[bytes], list[Event]]:
    """Rounds ``step_s`` apart from ``now``: what the sender sends reaches the receiver, what
    the receiver sends (NAK, FIN) reaches the sender, and with ``timers`` both ends' timeouts
    run; until the sender has nothing in flight or ``rounds`` pass. Returns (forward frames,
    reverse frames, receiver events)."""
    fwd: list[bytes] = []
    back: list[bytes] = []
    events: list[Event] = []
    for _ in range(rounds):
        frames = s.poll_transmit(now)
        fwd += frames
        for f in frames:
            events += r.receive(f, now)
        fb = r.poll_transmit(now)
        back += fb
        for f in fb:
            s.receive(f, now)
        if timers:
            events += r.handle_timeout(now)
            s.handle_timeout(now)
        if not s.active_bundles:
            break
        now += step_s
    return fwd, back, events
