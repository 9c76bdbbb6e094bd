"""What the field drivers (:mod:`uplink.udp`, :mod:`downlink.udp`) share: one turn of the
loop that drives a sans-IO protocol node over a socket.

The node (an ``UplinkNode`` or a ``DownlinkNode``) holds all protocol logic; a driver only
waits for a datagram or the node's next timer, whichever comes first, hands over what
arrived, and fires the timer when it is due. ``link_sim`` drives the same nodes from simpy.
"""

from __future__ import annotations

import selectors
from collections.abc import Callable
from typing import Protocol

__all__ = ["TimedNode", "wait_and_fire"]


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
