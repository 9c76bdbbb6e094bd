"""What the field drivers (:mod:`uplink.udp`, :mod:`downlink.udp`) share: their UDP
socket, and one turn of the loop that drives a sans-IO protocol node over it.

The node (an ``UplinkNode`` or a ``DownlinkNode``) holds all protocol logic; a driver only
waits for a datagram or the node's next timer, whichever comes first, hands over what
arrived, and fires the timer when it is due. ``link_sim`` drives the same nodes from simpy.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Protocol

__all__ = ["TimedNode", "TokenBucket", "UdpEndpoint", "parse_host_port", "wait_and_fire"]


def parse_host_port(text: str, *, any_port: bool = False) -> tuple[str, int]:
    """``"host:port"`` -> (host, port); ``any_port``: port 0 (a free one) allowed.

    Raises: ValueError naming the bad part."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"address {text!r}: expected host:port")
    if not port.isdigit() or not int(port) < 65536 or (int(port) == 0 and not any_port):
        raise ValueError(f"address {text!r}: port {port!r} is not 1..65535")
    return host, int(port)


class UdpEndpoint:
    """A non-blocking UDP socket bound to ``bind`` (port 0: a free port, see :attr:`port`),
    closed by :meth:`close` or at the end of a ``with`` block; ``clock`` gives the driver's
    times."""

    def __init__(
        self, bind: tuple[str, int], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.clock = clock
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(bind)
        self.sock.setblocking(False)
        self.send_errors = 0  # datagrams the OS refused (lost: the protocol repairs)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def datagrams(self) -> Iterator[tuple[bytes, tuple[str, int]]]:
        """Every datagram waiting now, with its sender. An error the OS reports for an
        earlier send (ICMP port unreachable: the peer is not up yet) is skipped."""
        while True:
            try:
                yield self.sock.recvfrom(65535)
            except BlockingIOError:
                return
            except OSError:
                continue

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> UdpEndpoint:  # not typing.Self: the edge runs Python 3.10
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TokenBucket:
    """Paces a sender at ``rate_bps`` (None: unpaced), with bursts of up to ``burst_bytes``
    (a few frames, so pacing stays smooth at low rates)."""

    def __init__(self, rate_bps: float | None, burst_bytes: int, now: float) -> None:
        if rate_bps is not None and rate_bps <= 0:
            raise ValueError(f"rate_bps {rate_bps}: must be > 0")
        self.rate_bps, self.burst_bytes = rate_bps, burst_bytes
        self.tokens, self.last = float(min(burst_bytes, 1 << 30)), now

    def budget(self, now: float) -> int | None:
        """Bytes that may go now (None: any)."""
        if self.rate_bps is None:
            return None
        self.tokens = min(self.tokens + self.rate_bps / 8 * (now - self.last), self.burst_bytes)
        self.last = now
        return int(self.tokens)

    def spend(self, n_bytes: int) -> None:
        self.tokens -= n_bytes


class Waitable(Protocol):
    """A selector with the driver's socket registered, or a transport (its ``select``)."""

    def select(self, timeout: float) -> object: ...


class TimedNode(Protocol):
    def next_timer(self) -> float | None: ...

    def handle_timeout(self, now: float) -> list: ...


def wait_and_fire(
    sel: Waitable,
    node: TimedNode,
    elapsed: Callable[[], float],
    tick_s: float,
    on_readable: Callable[[], object],
) -> float:
    """Wait for the socket until the node's next timer (at most ``tick_s``), call
    ``on_readable`` if a datagram came, then fire the node's timer if it is due.

    Args:
        sel: a selector with the driver's socket registered for reading, or a transport.
        node: the protocol node; its times are ``elapsed()`` seconds.
        elapsed: seconds since the driver started.
        tick_s: the longest wait (keeps the driver's other work going).
        on_readable: reads every datagram waiting and hands each to the node.
    Returns:
        ``elapsed()`` after the timer check.
    """
    wait = tick_s
    timer = node.next_timer()
    if timer is not None:
        wait = max(0.0, min(wait, timer - elapsed()))
    if sel.select(wait):
        on_readable()
    now = elapsed()
    timer = node.next_timer()
    if timer is not None and timer <= now:
        node.handle_timeout(now)
    return now
