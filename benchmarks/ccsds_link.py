"""The CCSDS space packet transport, longer than the tests: (1) images in TM packets through
a relay that loses a share of the datagrams both ways, NAK/FIN back as TC packets, with
packets of other APIDs and junk on the ground's port; (2) a fuzz run of the packet intake:
real packets mutated (bit flips, cuts, splices) and random bytes, given to
``CcsdsTransport.unwrap``. Prints figures; asserts nothing.

    python benchmarks/ccsds_link.py [--images 30] [--loss 0.1] [--fuzz 200000] [--seed 0]
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._field_transfer import link_args, run_transfer
from tests.lossy_relay import LossyRelay
from tests.test_field_udp import tbx
from textboost.field.ccsds import CcsdsSettings, CcsdsTransport
from textboost.protocol import LinkConfig

APID = 0x1B0


def transfer(args) -> None:
    rng = np.random.default_rng(args.seed)
    cfg = LinkConfig(mtu_bytes=256, arq="immediate", rto_s=0.5, nak_timeout_s=0.5,
                     max_retries=100, auth_key=b"benchmark-key-0123456789")  # fmt: skip
    images = {f"img{i:03d}.tbx": tbx(rng, n_groups=4) for i in range(args.images)}
    g = CcsdsTransport(("127.0.0.1", 0), None, CcsdsSettings(False, APID, APID, True))
    relay = LossyRelay(("127.0.0.1", g.port), args.loss, seed=args.seed)
    v = CcsdsTransport(("127.0.0.1", 0), ("127.0.0.1", relay.port),
                       CcsdsSettings(True, APID, APID, True))  # fmt: skip
    other = CcsdsTransport(("127.0.0.1", 0), ("127.0.0.1", g.port),
                           CcsdsSettings(True, APID + 1, APID, True))  # fmt: skip
    junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = {"apid": 0, "junk": 0}

    def noise(ground: threading.Thread) -> None:
        while ground.is_alive():
            other.send(rng.bytes(40))
            junk.sendto(rng.bytes(int(rng.integers(1, 60))), ("127.0.0.1", g.port))
            sent["apid"] += 1
            sent["junk"] += 1
            time.sleep(0.02)

    r = run_transfer(cfg, g, v, images, rate_bps=args.rate_bps, traffic=noise)
    relay.close()
    other.close()
    junk.close()
    print(f"transfer: {len(images)} images, {sum(map(len, images.values()))} B, loss "
          f"{args.loss} each way, TM with CDS time code, paced at {args.rate_bps:g} bit/s; "
          f"acked {r.acked}/{len(images)} in {r.wall_s:.1f} s (this process's CPU "
          f"{r.cpu_s:.1f} s)")
    print(f"  delivered byte-identical: {r.identical}/{len(images)}; complete at the ground: "
          f"{r.ground.bundles_complete}; relay lost {relay.lost}")
    print(f"  ground refused {dict(g.stats.foreign)} (sent: other APID {sent['apid']}, "
          f"junk {sent['junk']}); sequence gaps seen {g.lost_packets}")


def fuzz(args) -> None:
    rng = np.random.default_rng(args.seed)
    g = CcsdsTransport(("127.0.0.1", 0), None, CcsdsSettings(False, APID, APID, True))
    v = CcsdsTransport(("127.0.0.1", 0), ("127.0.0.1", 9), CcsdsSettings(True, APID, APID, True))
    real = [v.packet(rng.bytes(int(n))) for n in rng.integers(1, 300, size=64)]
    errors, frames, slowest = 0, 0, 0.0
    t0 = time.perf_counter()
    for i in range(args.fuzz):
        data = bytearray(real[int(rng.integers(len(real)))])
        kind = i % 4
        if kind == 0:
            for _ in range(int(rng.integers(1, 4))):
                data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            data = data[: int(rng.integers(len(data)))]
        elif kind == 2:
            data += rng.bytes(int(rng.integers(1, 64)))
        else:
            data = bytearray(rng.bytes(int(rng.integers(0, 80))))
        t = time.perf_counter()
        try:
            frame, _ = g.unwrap(bytes(data))
            frames += frame is not None
        except Exception:
            errors += 1
        slowest = max(slowest, time.perf_counter() - t)
    wall = time.perf_counter() - t0
    print(f"fuzz: {args.fuzz} inputs in {wall:.1f} s ({args.fuzz / wall:.0f}/s), exceptions "
          f"{errors}, frames out {frames}, slowest input {slowest * 1000:.2f} ms")
    g.close()
    v.close()


def main() -> None:
    args = link_args(__doc__, "--rate-bps", 200_000)
    transfer(args)
    fuzz(args)


if __name__ == "__main__":
    main()
