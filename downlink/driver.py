"""Drives a :class:`~downlink.node.DownlinkNode` over any field transport
(:mod:`textboost.field.transport`). NAK/FIN frames go back the way the transport answers
(UDP: to the sender of the latest frame the receiver accepted, never to junk; MAVLink: to
the vehicle's id). Complete images are
decoded on a worker thread, so a decode of a few seconds never stalls NAKs and FINs (the
sender would time out and re-send). Times given to the node are seconds since :meth:`run`
began.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from downlink.node import DownlinkNode
from textboost.field.transport import Transport, check_mtu
from textboost.field.udp import wait_and_fire

__all__ = ["FieldDownlink"]

TICK_S = 0.05


class FieldDownlink:
    """Args:
    node: the ground node to drive.
    transport: carries the frames (closed by :meth:`close`).

    Raises: ValueError if the link's MTU is more than one message of the transport carries.
    """

    def __init__(
        self,
        node: DownlinkNode,
        transport: Transport,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_mtu(node.receiver.config.mtu_bytes, transport)
        self.node = node
        node.defer_decode = True  # decoded on the worker thread, see run()
        self.transport = transport
        self.clock = clock
        self._last_rx_s: float | None = None  # when the latest frame came (run time)

    @property
    def send_errors(self) -> int:
        return self.transport.stats.send_errors

    def run(
        self,
        timeout_s: float,
        *,
        idle_timeout_s: float | None = None,
        expect_bundles: int | None = None,
        linger_s: float | None = None,
    ) -> float:
        """Receive until ``expect_bundles`` bundles are complete, or no frame came for
        ``idle_timeout_s`` after the first one, or ``timeout_s`` passes; then decode what is
        incomplete (:meth:`DownlinkNode.finish`).

        With ``expect_bundles`` met the loop lingers, answering, until no frame has come
        for ``linger_s`` (default three EOF re-send periods, ``3 * rto_s``): the FIN of the
        last photo can be lost, and a receiver that left at once would leave the sender
        re-sending EOF until it gives the photo up as failed.

        Returns:
            The run time in seconds.
        """
        if linger_s is None:
            linger_s = 3 * self.node.receiver.config.rto_s
        t0 = self.clock()
        self._last_rx_s = None
        met_s: float | None = None  # when expect_bundles was met
        decoding: list[Future] = []
        t = self.transport
        with ThreadPoolExecutor(1) as worker:
            while True:
                now = self.clock() - t0
                complete = self.node.take_complete()
                if complete:
                    decoding.append(worker.submit(self.node.decode, complete))
                if met_s is None and expect_bundles is not None \
                        and self.node.bundles_complete >= expect_bundles:
                    met_s = now
                if met_s is not None and now - max(met_s, self._last_rx_s or 0.0) >= linger_s:
                    break
                if now >= timeout_s:
                    break
                last_rx = self._last_rx_s
                idle = last_rx is not None and idle_timeout_s is not None
                if idle and now - last_rx >= idle_timeout_s:
                    break
                now = wait_and_fire(t, self.node, lambda: self.clock() - t0, TICK_S,
                                    lambda: self._drain(t0))
                for f in self.node.poll_transmit(now):
                    t.send(f)  # a lost NAK/FIN: the sender's EOF timer asks again
                t.tick(now)
            for f in decoding:
                f.result()  # re-raise a decode worker's error here
        now = self.clock() - t0
        self.node.finish(now)
        return now

    def _drain(self, t0: float) -> None:
        """Hand every waiting frame to the node; note when the last one came."""
        rx = self.node.receiver
        for data in self.transport.receive():
            self._last_rx_s = now = self.clock() - t0
            before = rx.stats.frames_received
            self.node.receive(data, now)
            if rx.stats.frames_received != before:  # checked, authentic, new
                self.transport.confirm(data)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> FieldDownlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
