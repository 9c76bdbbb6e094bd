"""Real UDP transport for field trials: drives an :class:`~uplink.node.UplinkNode` over a
socket with ``selectors`` (one datagram = one frame; the protocol holds all the logic).

The loop sends what the node hands out, paced by an optional token bucket
(``rate_bps``, for emulating a narrow radio on a fast network), reads NAK/FIN datagrams,
and fires the node's timers. Times given to the node are seconds since :meth:`run` began.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable

from uplink.node import UplinkNode

__all__ = ["UdpUplink", "parse_host_port"]

TICK_S = 0.02  # longest sleep between polls (keeps pacing smooth at low rates)


def parse_host_port(text: str) -> tuple[str, int]:
    """``"host:port"`` -> (host, port). Raises: ValueError naming the bad part."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"address {text!r}: expected host:port")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address {text!r}: port {port!r} is not 1..65535")
    return host, int(port)


class UdpUplink:
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
        self.node = node
        self.remote = remote
        self.rate_bps = rate_bps
        self.clock = clock
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(bind)
        self.sock.setblocking(False)
        self.send_errors = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> UdpUplink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, timeout_s: float) -> bool:
        """Send until the node is idle (everything acknowledged, failed or, one-way, sent)
        or ``timeout_s`` passes.

        Returns:
            True if the node went idle, False on timeout.
        """
        mtu = self.node.sender.config.mtu_bytes
        t0 = last = self.clock()
        tokens = float(mtu)
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ)
            while True:
                now = self.clock()
                if self.node.idle:
                    return True
                if now - t0 >= timeout_s:
                    return False
                if self.rate_bps is not None:
                    tokens = min(tokens + self.rate_bps / 8 * (now - last), 4.0 * mtu)
                last = now
                budget = None if self.rate_bps is None else int(tokens)
                for frame in self.node.poll_transmit(now - t0, budget):
                    tokens -= len(frame)
                    try:
                        self.sock.sendto(frame, self.remote)
                    except OSError:  # full buffer or unreachable: a lost frame, ARQ repairs
                        self.send_errors += 1
                wait = TICK_S
                timer = self.node.next_timer()
                if timer is not None:
                    wait = max(0.0, min(wait, timer - (now - t0)))
                if sel.select(wait):
                    self._drain(t0)
                timer = self.node.next_timer()
                if timer is not None and timer <= self.clock() - t0:
                    self.node.handle_timeout(self.clock() - t0)

    def _drain(self, t0: float) -> None:
        while True:
            try:
                data, _ = self.sock.recvfrom(65535)
            except BlockingIOError:
                return
            except OSError:  # e.g. ICMP port unreachable from an earlier datagram
                continue
            self.node.receive(data, self.clock() - t0)
