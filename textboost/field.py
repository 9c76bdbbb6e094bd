"""What the field drivers (:mod:`uplink.udp`, :mod:`downlink.udp`) share: their UDP
socket, and one turn of the loop that drives a sans-IO protocol node over it.

The node (an ``UplinkNode`` or a ``DownlinkNode``) holds all protocol logic; a driver only
waits for a datagram or the node's next timer, whichever comes first, hands over what
arrived, and fires the timer when it is due. ``link_sim`` drives the same nodes from simpy.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable
from typing import Protocol, Self

__all__ = ["TimedNode", "UdpEndpoint", "wait_and_fire"]


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

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TimedNode(Protocol):
    def next_timer(self) -> float | None: ...

    def handle_timeout(self, now: float) -> list: ...


def wait_and_fire(
    sel: selectors.BaseSelector,
    node: TimedNode,
    elapsed: Callable[[], float],
    tick_s: float,
    on_readable: Callable[[], object],
) -> float:
    """Wait for the socket until the node's next timer (at most ``tick_s``), call
    ``on_readable`` if a datagram came, then fire the node's timer if it is due.

    Args:
        sel: a selector with the driver's socket registered for reading.
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
