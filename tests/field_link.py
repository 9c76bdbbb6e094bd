"""The two nodes over a field transport in one process, for the transport tests and
benchmarks (MAVLink, CCSDS, serial): the ground's loop in a thread and an edge holding
images. Real transports, real nodes; only the services around them are left out."""

from __future__ import annotations

import threading
from pathlib import Path

from downlink import DownlinkNode
from downlink.driver import FieldDownlink
from textboost.field.transport import Transport
from textboost.protocol import LinkConfig
from uplink import UplinkNode


class GroundLoop:
    """A ``DownlinkNode`` (no decoding) on ``transport``, its ``FieldDownlink.run(**run)``
    in a thread from entering the block; on leaving, the thread is joined and the driver
    (with its transport) closed.

    Use ``join`` inside the block to wait for the loop to end before reading what is left
    on the transport."""

    def __init__(self, cfg: LinkConfig, transport: Transport, out_dir: Path, **run) -> None:
        self.node = DownlinkNode(cfg, out_dir=out_dir, codec_factory=None)
        self.rx = FieldDownlink(self.node, transport)
        self.thread = threading.Thread(target=self.rx.run, kwargs=run)

    def __enter__(self) -> GroundLoop:
        self.thread.start()
        return self

    def join(self, timeout_s: float = 60.0) -> None:
        self.thread.join(timeout_s)

    def __exit__(self, *exc) -> None:
        self.join()
        self.rx.close()


def edge_holding(cfg: LinkConfig, images: dict[str, bytes], **node) -> UplinkNode:
    """An ``UplinkNode(cfg, **node)`` with ``images`` (name -> `.tbx` bytes) stored at t=0."""
    edge = UplinkNode(cfg, **node)
    for name, data in images.items():
        edge.store(name, data, 0.0)
    return edge
