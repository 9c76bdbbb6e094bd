"""The MAVLink transport through a real MAVLink router: MAVProxy with the vehicle's end on
its ``--master`` and the ground's on its ``--out``, as on a ground station (unsigned, then
signed). Not in the test suite: MAVProxy pulls in VTK; install it to run this
(``pip install MAVProxy``). Prints figures; asserts nothing.

    python benchmarks/mavlink_router.py [--images 5]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from downlink import DownlinkNode
from downlink.driver import FieldDownlink
from downlink.store import stored
from tests.field_harness import free_port
from tests.test_field_mavlink import KEY
from tests.test_field_udp import tbx
from textboost.field.mavlink import GROUND_ID, VEHICLE_ID, MavlinkSettings, MavlinkTransport
from textboost.protocol import LinkConfig
from uplink import UplinkNode
from uplink.driver import FieldUplink


def transfer(n_images: int, master: int, out: int, key: bytes | None) -> None:
    rng = np.random.default_rng(1)
    cfg = LinkConfig(mtu_bytes=128, arq="immediate", rto_s=0.5, nak_timeout_s=0.5,
                     max_retries=40)  # fmt: skip
    images = {f"i{i}.tbx": tbx(rng) for i in range(n_images)}
    g = MavlinkTransport(MavlinkSettings(f"udpin:127.0.0.1:{out}", GROUND_ID, VEHICLE_ID,
                                         signing_key=key))  # fmt: skip
    v = MavlinkTransport(MavlinkSettings(f"udpout:127.0.0.1:{master}", VEHICLE_ID, GROUND_ID,
                                         signing_key=key))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        ground = DownlinkNode(cfg, out_dir=Path(tmp), codec_factory=None)
        rx = FieldDownlink(ground, g)
        thread = threading.Thread(target=rx.run, kwargs={"timeout_s": 60.0,
                                                         "idle_timeout_s": 3.0})
        thread.start()
        edge = UplinkNode(cfg)
        for name, data in images.items():
            edge.store(name, data, 0.0)
        t0 = time.perf_counter()
        with FieldUplink(edge, v, rate_bps=100_000) as tx:
            tx.run(60.0)
            acked = sum(r.acked_s is not None for r in edge.images.values())
        wall = time.perf_counter() - t0
        thread.join(60)
        same = sum(  # the ground's layout: NAME.tbx by SHA-256 (downlink/store.py)
            stored(tmp, d).is_file() and stored(tmp, d).read_bytes() == d
            for n, d in images.items() if edge.images[n].bundle_id is not None
        )
        rx.close()
    print(f"{'signed' if key else 'unsigned'}: acked {acked}/{len(images)}, byte-identical {same}/"
          f"{len(images)}, {wall:.1f} s; ground refused {dict(g.stats.foreign)}, vehicle "
          f"refused {dict(v.stats.foreign)}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=5)
    args = p.parse_args()
    beside = Path(sys.executable).with_name("mavproxy.py")  # a virtual environment's bin/
    exe = shutil.which("mavproxy.py") or (str(beside) if beside.exists() else None)
    if exe is None:
        raise SystemExit("mavproxy.py is not installed: pip install MAVProxy")
    master, out = free_port(), free_port()
    with tempfile.TemporaryDirectory() as logs:
        proxy = subprocess.Popen(
            [exe, f"--master=udpin:127.0.0.1:{master}", f"--out=udpout:127.0.0.1:{out}",
             "--daemon", "--non-interactive", "--default-modules="],
            cwd=logs, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(5)  # MAVProxy's start
            for key in (None, KEY):
                transfer(args.images, master, out, key)
        finally:
            proxy.terminate()
            proxy.wait(10)


if __name__ == "__main__":
    main()
