"""What the transport benchmarks share (``mavlink_link.py``, ``ccsds_link.py``): their
command line, and the timed transfer of images from an edge node to a ground node over two
field transports, the ground running until its link has been idle for 3 s."""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from downlink import DownlinkNode
from downlink.store import stored
from tests.field_link import GroundLoop, edge_holding
from textboost.field.transport import Transport
from textboost.protocol import LinkConfig
from uplink import UplinkNode
from uplink.driver import FieldUplink


def link_args(doc: str, rate_option: str, rate_default: float) -> argparse.Namespace:
    """``--images --loss --fuzz --seed`` and the link's ``rate_option`` (bit/s), parsed; the
    machine and its load printed first."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--images", type=int, default=30)
    p.add_argument("--loss", type=float, default=0.1)
    p.add_argument(rate_option, type=float, default=rate_default)
    p.add_argument("--fuzz", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(f"2-core x86 shared with other jobs; load average {os.getloadavg()[0]:.1f}")
    return args


@dataclass(frozen=True)
class Transfer:
    ground: DownlinkNode
    edge: UplinkNode
    acked: int  # images the edge saw acknowledged
    identical: int  # images stored at the ground byte for byte as sent
    wall_s: float  # from the first frame to the last ack
    cpu_s: float  # this process's CPU time (both nodes and their threads) meanwhile


def run_transfer(
    cfg: LinkConfig,
    ground: Transport,
    vehicle: Transport,
    images: dict[str, bytes],
    *,
    rate_bps: float | None = None,
    traffic: Callable[[threading.Thread], object] | None = None,
) -> Transfer:
    """Send ``images`` (name -> `.tbx`) from ``vehicle`` to ``ground``. ``traffic`` (the
    foreign traffic sharing the link) runs in a thread of its own from the ground's start,
    given the ground's thread to run as long as it does. Both transports are closed on
    return."""
    with tempfile.TemporaryDirectory() as tmp:
        with GroundLoop(cfg, ground, Path(tmp), timeout_s=600.0, idle_timeout_s=3.0) as loop:
            side = threading.Thread(target=traffic or (lambda _: None), args=(loop.thread,))
            side.start()
            edge = edge_holding(cfg, images, max_in_flight=2)
            t0, c0 = time.perf_counter(), time.process_time()
            with FieldUplink(edge, vehicle, rate_bps=rate_bps) as tx:
                tx.run(timeout_s=600.0)
            acked = sum(r.acked_s is not None for r in edge.images.values())
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            loop.join()
            side.join(5)
        identical = sum(  # the ground's layout: NAME.tbx by SHA-256 (downlink/store.py)
            stored(tmp, d).is_file() and stored(tmp, d).read_bytes() == d
            for n, d in images.items()
            if edge.images[n].bundle_id is not None
        )
    return Transfer(loop.node, edge, acked, identical, wall, cpu)
