"""Real UDP transport for field trials: :class:`~uplink.driver.FieldUplink` over one UDP
socket (one datagram = one frame; the protocol holds all the logic), paced by an optional
token bucket (``rate_bps``, for emulating a narrow radio on a fast network)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from textboost.field.transport import UdpTransport
from textboost.field.udp import parse_host_port
from uplink.driver import FieldUplink
from uplink.node import UplinkNode

__all__ = ["UdpUplink", "parse_host_port"]


class UdpUplink(FieldUplink):
    """Args:
    node: the edge node to drive.
    remote: (host, port) of the ground receiver.
    rate_bps: forward link rate to emulate (None = as fast as the network takes it).
    bind: local address (default: any interface, an ephemeral port).
    """

    def __init__(
        self,
        node: UplinkNode,
        remote: tuple[str, int],
        *,
        rate_bps: float | None = None,
        bind: tuple[str, int] = ("0.0.0.0", 0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_bps is not None and rate_bps <= 0:
            raise ValueError(f"rate_bps {rate_bps}: must be > 0")
        super().__init__(node, UdpTransport(bind, peer=remote), rate_bps=rate_bps, clock=clock)

    @property
    def sock(self) -> socket.socket:
        return self.transport.sock

    @property
    def port(self) -> int:
        return self.transport.port
