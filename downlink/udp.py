"""Real UDP receiver for field trials: :class:`~downlink.driver.FieldDownlink` over one UDP
socket; NAK/FIN frames go back to the address of the latest frame the receiver accepted."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from downlink.driver import FieldDownlink
from downlink.node import DownlinkNode
from textboost.field.transport import UdpTransport

__all__ = ["UdpDownlink"]


class UdpDownlink(FieldDownlink):
    """Args:
    node: the ground node to drive.
    bind: (host, port) to listen on; port 0 picks a free port (see :attr:`port`).
    """

    def __init__(
        self,
        node: DownlinkNode,
        bind: tuple[str, int] = ("0.0.0.0", 0),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(node, UdpTransport(bind), clock=clock)

    @property
    def sock(self) -> socket.socket:
        return self.transport.sock

    @property
    def port(self) -> int:
        return self.transport.port

    @property
    def peer(self) -> tuple[str, int] | None:
        return self.transport.peer
