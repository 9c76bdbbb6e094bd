"""Real UDP transport for field trials: drives an :class:`~uplink.node.UplinkNode` over a
socket with ``selectors`` (one datagram = one frame; the protocol holds all the logic).

The loop sends what the node hands out, paced by an optional token bucket
(``rate_bps``, for emulating a narrow radio on a fast network), reads NAK/FIN datagrams,
and fires the node's timers. Times given to the node are seconds since :meth:`run` began.
"""

from __future__ import annotations

import selectors
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from textboost.field.udp import TokenBucket, UdpEndpoint, parse_host_port, wait_and_fire
from uplink.encode import Encoded
from uplink.node import UplinkNode
from uplink.sources import Capture

__all__ = ["UdpUplink", "parse_host_port"]

TICK_S = 0.02  # longest sleep between polls (keeps pacing smooth at low rates)


class UdpUplink(UdpEndpoint):
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
        super().__init__(bind, clock)
        self.node = node
        self.remote = remote
        self.rate_bps = rate_bps
        self.encode_errors: list[str] = []  # one line per image that could not be encoded

    def run(self, timeout_s: float, captures: Sequence[Capture] = ()) -> bool:
        """Send until the node is idle (everything acknowledged, failed or, one-way, sent)
        or ``timeout_s`` passes.

        Args:
            timeout_s: wall-clock limit.
            captures: images to encode on a worker thread, each no earlier than its
                ``capture_s`` after the start, and to store as they are ready: sending starts
                with the first image, not after the last. An image that cannot be encoded
                is listed in :attr:`encode_errors` and the others go on.
        Returns:
            True if every capture was handled and the node went idle, False on timeout.
        Raises:
            ValueError: captures given but the node has no encode pipeline.
        """
        if captures and self.node.pipeline is None:
            raise ValueError("captures given but the UplinkNode has no encode pipeline")
        mtu = self.node.sender.config.mtu_bytes
        t0 = self.clock()
        bucket = TokenBucket(self.rate_bps, 4 * mtu, t0)
        bucket.tokens = float(mtu)
        worker = ThreadPoolExecutor(1)
        encoding = deque((c, worker.submit(self._encode_at, c, t0)) for c in captures)
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(self.sock, selectors.EVENT_READ)
                while True:
                    now = self.clock()
                    self._store_encoded(encoding, now - t0)
                    if not encoding and self.node.idle:
                        return True
                    if now - t0 >= timeout_s:
                        return False
                    for frame in self.node.poll_transmit(now - t0, bucket.budget(now)):
                        bucket.spend(len(frame))
                        try:
                            self.sock.sendto(frame, self.remote)
                        except OSError:  # full buffer or unreachable: lost, ARQ repairs
                            self.send_errors += 1
                    wait_and_fire(sel, self.node, lambda: self.clock() - t0, TICK_S,
                                  lambda: self._drain(t0))
        finally:
            worker.shutdown(wait=True, cancel_futures=True)

    def _encode_at(self, capture: Capture, t0: float) -> Encoded:
        delay_s = t0 + capture.capture_s - self.clock()
        if delay_s > 0:
            time.sleep(delay_s)
        assert self.node.pipeline is not None
        return self.node.pipeline.encode(capture.path)

    def _store_encoded(self, encoding: deque[tuple[Capture, Future]], now: float) -> None:
        while encoding and encoding[0][1].done():
            capture, future = encoding.popleft()
            try:
                enc = future.result()
            except (ValueError, OSError) as exc:
                self.encode_errors.append(str(exc))
                continue
            self.node.store(capture.image_id, enc.data, now, capture.priority)

    def _drain(self, t0: float) -> None:
        for data, _ in self.datagrams():
            self.node.receive(data, self.clock() - t0)
