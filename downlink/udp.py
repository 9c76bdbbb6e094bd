"""Real UDP receiver for field trials: drives a :class:`~downlink.node.DownlinkNode` over a
socket with ``selectors``. NAK/FIN frames go back to the address the latest frame came
from. Complete images are decoded on a worker thread, so a decode of a few seconds never
stalls NAKs and FINs (the sender would time out and re-send). Times given to the node are
seconds since :meth:`UdpDownlink.run` began.
"""

from __future__ import annotations

import selectors
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from downlink.node import DownlinkNode
from textboost.field.udp import UdpEndpoint, wait_and_fire

__all__ = ["UdpDownlink"]

TICK_S = 0.05


class UdpDownlink(UdpEndpoint):
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
        super().__init__(bind, clock)
        self.node = node
        node.defer_decode = True  # decoded on the worker thread, see run()
        self.peer: tuple[str, int] | None = None
        self._last_rx_s: float | None = None  # when the latest datagram came (run time)

    def run(
        self,
        timeout_s: float,
        *,
        idle_timeout_s: float | None = None,
        expect_bundles: int | None = None,
    ) -> float:
        """Receive until ``expect_bundles`` bundles are complete, or no frame came for
        ``idle_timeout_s`` after the first one, or ``timeout_s`` passes; then decode what is
        incomplete (:meth:`DownlinkNode.finish`).

        Returns:
            The run time in seconds.
        """
        t0 = self.clock()
        self._last_rx_s = None
        decoding: list[Future] = []
        with selectors.DefaultSelector() as sel, ThreadPoolExecutor(1) as worker:
            sel.register(self.sock, selectors.EVENT_READ)
            while True:
                now = self.clock() - t0
                complete = self.node.take_complete()
                if complete:
                    decoding.append(worker.submit(self.node.decode, complete))
                if expect_bundles is not None and self.node.bundles_complete >= expect_bundles:
                    break
                if now >= timeout_s:
                    break
                last_rx = self._last_rx_s
                idle = last_rx is not None and idle_timeout_s is not None
                if idle and now - last_rx >= idle_timeout_s:
                    break
                now = wait_and_fire(sel, self.node, lambda: self.clock() - t0, TICK_S,
                                    lambda: self._drain(t0))
                self._flush(now)
            for f in decoding:
                f.result()  # re-raise a decode worker's error here
        now = self.clock() - t0
        self.node.finish(now)
        return now

    def _drain(self, t0: float) -> None:
        """Hand every waiting datagram to the node; note when the last one came."""
        self._last_rx_s = self.clock() - t0
        for data, addr in self.datagrams():
            self._last_rx_s = now = self.clock() - t0
            self.peer = addr
            self.node.receive(data, now)

    def _flush(self, now: float) -> None:
        frames = self.node.poll_transmit(now)
        if self.peer is None:
            return
        for f in frames:
            try:
                self.sock.sendto(f, self.peer)
            except OSError:  # a lost NAK/FIN: the sender's EOF timer asks again
                self.send_errors += 1
