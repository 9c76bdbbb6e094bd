"""What a field driver needs of a link, whatever carries the frames: plain UDP datagrams
(:class:`UdpTransport`), MAVLink 2 TUNNEL messages (:mod:`.mavlink`) or CCSDS space packets
over UDP (:mod:`.ccsds`).

A transport moves the protocol's frames as opaque bytes, one frame per message; it holds no
protocol logic (the sans-IO :mod:`textboost.protocol` does). It refuses and counts what is
not ours (other MAVLink traffic, other APIDs, damaged messages) so that nothing foreign ever
reaches the protocol, and it says how many bytes a frame costs on the air, so a driver can
cap its share of a radio shared with telemetry.

    t = UdpTransport(("0.0.0.0", 0), peer=("192.0.2.10", 9000))
    t.select(0.05)                      # wait until a message may be waiting
    for frame in t.receive(): ...       # our frames only
    t.send(frame)                       # -> bytes on the air (0: not sent)
    t.confirm(frame)                    # the protocol accepted a received frame
    t.tick(now)                         # periodic duties (MAVLink heartbeats)

A ground station answers whoever its vehicle is, but only a frame that passed the
protocol's checks (FCS, tag, replay window) says who that is: a UDP transport without a
fixed peer answers the source of the last frame the driver confirmed
(:meth:`~Transport.confirm`), never the sender of the latest datagram (which may be junk
or a replay from anyone).
"""

from __future__ import annotations

import selectors
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from textboost.field.udp import TokenBucket, UdpEndpoint

__all__ = [
    "Datagram",
    "Transport",
    "TransportStats",
    "UdpTransport",
    "WireBucket",
    "check_mtu",
    "pace_rate",
]


@dataclass(slots=True)
class TransportStats:
    """Counters of one transport. ``foreign``: messages refused, by reason (``heartbeat``,
    ``other_message``, ``payload_type``, ``source``, ``target``, ``signature``,
    ``bad_data``, ``apid``, ...): never handed to the protocol."""

    frames_sent: int = 0
    frames_received: int = 0
    wire_bytes_sent: int = 0  # frames with the transport's own framing
    wire_bytes_received: int = 0
    send_errors: int = 0  # messages the OS or the link refused (lost: the protocol repairs)
    other_sent: int = 0  # the transport's own messages (MAVLink heartbeats)
    foreign: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "frames_sent": self.frames_sent, "frames_received": self.frames_received,
            "wire_bytes_sent": self.wire_bytes_sent,
            "wire_bytes_received": self.wire_bytes_received, "send_errors": self.send_errors,
            "other_sent": self.other_sent, "foreign": dict(self.foreign),
        }  # fmt: skip


class Transport(Protocol):
    """The small interface the drivers call (see the module docstring).

    ``mtu_bytes``: the largest frame one message carries (None: no limit of its own).
    ``cap_bps``: the share of the radio the frames may take, in on-air bits per second
    (None: no cap); the driver paces :meth:`send` by :meth:`wire_bytes`."""

    name: str
    mtu_bytes: int | None
    cap_bps: float | None
    stats: TransportStats

    def select(self, timeout: float) -> bool: ...

    def receive(self) -> list[bytes]: ...

    def send(self, frame: bytes) -> int: ...

    def confirm(self, frame: bytes) -> None: ...

    def wire_bytes(self, frame_len: int) -> int: ...

    def tick(self, now: float) -> None: ...

    def close(self) -> None: ...


class WireBucket(TokenBucket):
    """A token bucket over on-air bytes: the budget handed to the protocol is in frame
    bytes, the spending in wire bytes (frame plus the transport's framing), so the long-run
    rate on the air is ``rate_bps`` whatever the per-message overhead."""

    def __init__(
        self, rate_bps: float | None, burst_bytes: int, now: float,
        wire_bytes: Callable[[int], int],
    ) -> None:  # fmt: skip
        super().__init__(rate_bps, burst_bytes, now)
        self.wire = wire_bytes

    def budget(self, now: float) -> int | None:
        b = super().budget(now)
        if b is None:
            return None
        return max(0, b - (self.wire(0)))  # room for one message's framing

    def spend(self, n_bytes: int) -> None:
        super().spend(self.wire(n_bytes))


def check_mtu(mtu_bytes: int, transport: Transport) -> None:
    """Raises ValueError when one message of ``transport`` cannot carry a full frame."""
    limit = transport.mtu_bytes
    if limit is not None and mtu_bytes > limit:
        raise ValueError(
            f"link MTU {mtu_bytes} bytes: one {transport.name} message carries at most "
            f"{limit}; set the MTU (--mtu, link.mtu_bytes) to {limit} or less"
        )


def pace_rate(rate_bps: float | None, cap_bps: float | None) -> float | None:
    """The tighter of a driver's pacing rate and a transport's cap (None: none)."""
    rates = [r for r in (rate_bps, cap_bps) if r is not None]
    return min(rates) if rates else None


class FdWaiter:
    """Waits on one file descriptor that may change (a TCP server's accepted client)."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._fd: int | None = None

    def wait(self, fd: int | None, timeout: float) -> bool:
        if fd != self._fd:
            if self._fd is not None:
                self._sel.unregister(self._fd)
            if fd is not None:
                self._sel.register(fd, selectors.EVENT_READ)
            self._fd = fd
        if fd is None:
            return False
        return bool(self._sel.select(timeout))

    def close(self) -> None:
        self._sel.close()


class Datagram(bytes):
    """A received frame that remembers its sender (``source``), for :meth:`Transport.confirm`."""

    source: tuple[str, int]

    def __new__(cls, data: bytes, source: tuple[str, int]) -> Datagram:
        obj = super().__new__(cls, data)
        obj.source = source
        return obj


class UdpTransport(UdpEndpoint):
    """One frame per UDP datagram. ``peer``: where frames go (None: to the source of the
    last frame the driver confirmed valid, as a ground station answers its vehicle)."""

    name = "udp"
    mtu_bytes: int | None = None
    cap_bps: float | None = None

    def __init__(self, bind: tuple[str, int], peer: tuple[str, int] | None = None) -> None:
        super().__init__(bind)
        self.peer = peer
        self.fixed_peer = peer is not None
        self.stats = TransportStats()
        self._waiter = FdWaiter()

    def select(self, timeout: float) -> bool:
        return self._waiter.wait(self.sock.fileno(), timeout)

    def receive(self) -> list[bytes]:
        out = []
        for data, addr in self.datagrams():
            self.stats.frames_received += 1
            self.stats.wire_bytes_received += len(data)
            out.append(Datagram(data, addr))
        return out

    def confirm(self, frame: bytes) -> None:
        """``frame`` (one :meth:`receive` returned) passed the protocol's checks: answer its
        source from now on, unless the peer is fixed."""
        source = getattr(frame, "source", None)
        if not self.fixed_peer and source is not None:
            self.peer = source

    def send(self, frame: bytes) -> int:
        if self.peer is None:
            return 0  # nobody to answer yet: the sender's EOF asks again
        try:
            self.sock.sendto(frame, self.peer)
        except OSError:  # full buffer or unreachable: lost, the protocol repairs
            self.stats.send_errors += 1
            self.send_errors += 1
            return 0
        self.stats.frames_sent += 1
        self.stats.wire_bytes_sent += len(frame)
        return len(frame)

    def wire_bytes(self, frame_len: int) -> int:
        return frame_len

    def tick(self, now: float) -> None:
        pass

    def close(self) -> None:
        self._waiter.close()
        super().close()
