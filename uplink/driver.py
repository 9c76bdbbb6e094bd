"""Drives an :class:`~uplink.node.UplinkNode` over any field transport
(:mod:`textboost.field.transport`: UDP datagrams, MAVLink TUNNEL messages, CCSDS space
packets), one frame per message; the protocol holds all the logic.

The loop sends what the node hands out, paced by a token bucket over on-air bytes (the
tighter of ``rate_bps`` and the transport's cap, so a radio shared with telemetry keeps its
share), reads NAK/FIN frames, fires the node's timers and the transport's own (MAVLink
heartbeats). Times given to the node are seconds since :meth:`run` began.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from textboost.field.transport import Transport, WireBucket, check_mtu, pace_rate
from textboost.field.udp import wait_and_fire
from uplink.encode import Encoded
from uplink.node import UplinkNode
from uplink.sources import Capture

__all__ = ["FieldUplink"]

TICK_S = 0.02  # longest sleep between polls (keeps pacing smooth at low rates)


class FieldUplink:
    """Args:
    node: the edge node to drive.
    transport: carries the frames (closed by :meth:`close`).
    rate_bps: on-air rate to pace at (None: the transport's cap, else as fast as it takes).

    Raises: ValueError if the link's MTU is more than one message of the transport carries.
    """

    def __init__(
        self,
        node: UplinkNode,
        transport: Transport,
        *,
        rate_bps: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_bps is not None and rate_bps <= 0:
            raise ValueError(f"rate_bps {rate_bps}: must be > 0")
        check_mtu(node.sender.config.mtu_bytes, transport)
        self.node = node
        self.transport = transport
        self.rate_bps = rate_bps
        self.clock = clock
        self.encode_errors: list[str] = []  # one line per image that could not be encoded

    @property
    def send_errors(self) -> int:
        return self.transport.stats.send_errors

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
        t = self.transport
        mtu = self.node.sender.config.mtu_bytes
        t0 = self.clock()
        rate = pace_rate(self.rate_bps, t.cap_bps)
        bucket = WireBucket(rate, 4 * t.wire_bytes(mtu), t0, t.wire_bytes)
        bucket.tokens = float(t.wire_bytes(mtu))
        worker = ThreadPoolExecutor(1)
        encoding = deque((c, worker.submit(self._encode_at, c, t0)) for c in captures)
        elapsed = lambda: self.clock() - t0  # noqa: E731
        try:
            while True:
                now = self.clock()
                self._store_encoded(encoding, now - t0)
                if not encoding and self.node.idle:
                    return True
                if now - t0 >= timeout_s:
                    return False
                for frame in self.node.poll_transmit(now - t0, bucket.budget(now)):
                    bucket.spend(len(frame))
                    t.send(frame)  # a lost frame is the protocol's to repair
                t.tick(now - t0)
                wait_and_fire(t, self.node, elapsed, TICK_S, lambda: self._drain(t0))
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
        for data in self.transport.receive():
            self.node.receive(data, self.clock() - t0)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> FieldUplink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
