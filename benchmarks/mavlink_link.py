"""The MAVLink 2 transport, longer than the tests: (1) images over real pymavlink UDP
endpoints through a relay that loses a share of the messages both ways, signed, capped,
with foreign MAVLink traffic (an autopilot's heartbeats and other TUNNEL messages) on the
ground's port; (2) a fuzz run of the TUNNEL intake: real messages mutated (bit flips,
cuts, splices, replays) and random bytes, fed to ``MavlinkTransport.feed``. Prints figures;
asserts nothing.

    python benchmarks/mavlink_link.py [--images 30] [--loss 0.1] [--cap-bps 64000]
        [--fuzz 200000] [--seed 0]
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._field_transfer import link_args, run_transfer
from tests.lossy_relay import LossyRelay
from tests.test_field_mavlink import KEY, Foreign, _packer, _tunnel
from tests.test_field_udp import tbx
from textboost.field.mavlink import GROUND_ID, VEHICLE_ID, MavlinkSettings, MavlinkTransport
from textboost.protocol import LinkConfig


def transfer(args) -> None:
    rng = np.random.default_rng(args.seed)
    cfg = LinkConfig(mtu_bytes=128, arq="immediate", rto_s=0.5, nak_timeout_s=0.5,
                     max_retries=100, auth_key=b"benchmark-key-0123456789")  # fmt: skip
    images = {f"img{i:03d}.tbx": tbx(rng, n_groups=4) for i in range(args.images)}
    g = MavlinkTransport(MavlinkSettings("udpin:127.0.0.1:0", GROUND_ID, VEHICLE_ID,
                                         signing_key=KEY))  # fmt: skip
    relay = LossyRelay(("127.0.0.1", g.local_port), args.loss, seed=args.seed)
    v = MavlinkTransport(MavlinkSettings(f"udpout:127.0.0.1:{relay.port}", VEHICLE_ID,
                                         GROUND_ID, signing_key=KEY, cap_bps=args.cap_bps))
    foreign = Foreign(("127.0.0.1", g.local_port))
    r = run_transfer(cfg, g, v, images, traffic=lambda ground: foreign.start(while_alive=ground))
    foreign.close()
    relay.close()
    st = r.edge.sender.stats
    payload = sum(len(d) for d in images.values())
    print(f"transfer: {len(images)} images, {payload} B, loss {args.loss} each way, signed, "
          f"cap {args.cap_bps:g} bit/s; acked {r.acked}/{len(images)}")
    print(f"  delivered byte-identical: {r.identical}/{len(images)}; complete bundles at the "
          f"ground: {r.ground.bundles_complete}")
    print(f"  wall {r.wall_s:.1f} s, this process's CPU {r.cpu_s:.1f} s; TUNNEL bytes sent "
          f"{v.stats.wire_bytes_sent} = {v.stats.wire_bytes_sent * 8 / r.wall_s:.0f} bit/s "
          f"on average (cap {args.cap_bps:g})")
    print(f"  frames sent {v.stats.frames_sent} (retransmitted {st.retransmitted_frames}); "
          f"relay lost {relay.lost}, passed {relay.passed}")
    print(f"  ground refused (foreign) {dict(g.stats.foreign)}; injected {foreign.sent}")
    rs = r.ground.receiver.stats
    print(f"  reached the protocol and dropped: corrupt {rs.dropped_corrupt}, auth "
          f"{rs.dropped_auth}, replay {rs.dropped_replay}")


def fuzz(args) -> None:
    rng = np.random.default_rng(args.seed)
    real = []
    for key in (None, KEY):
        peer = _packer(*VEHICLE_ID, key=key)
        real += [(key, _tunnel(peer, GROUND_ID, rng.bytes(int(n))))
                 for n in rng.integers(1, 129, size=64)]  # fmt: skip
    targets = {k: MavlinkTransport(MavlinkSettings("udpin:127.0.0.1:0", GROUND_ID, VEHICLE_ID,
                                                   signing_key=k, heartbeat_s=0))
               for k in (None, KEY)}  # fmt: skip
    errors, frames, slowest = 0, 0, 0.0
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    for i in range(args.fuzz):
        key, msg = real[int(rng.integers(len(real)))]
        data = bytearray(msg)
        kind = i % 4
        if kind == 0:  # bit flips
            for _ in range(int(rng.integers(1, 4))):
                data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
        elif kind == 1:  # cut
            data = data[: int(rng.integers(len(data)))]
        elif kind == 2:  # splice with another message, or random bytes
            other = real[int(rng.integers(len(real)))][1]
            data += other[int(rng.integers(len(other))):] if rng.random() < 0.5 else rng.bytes(
                int(rng.integers(1, 64)))
        else:  # a replay of the message as it is
            pass
        t = time.perf_counter()
        try:
            out = targets[key].feed(bytes(data))
            targets[key]._end_datagram()
            frames += len(out)
        except Exception:
            errors += 1
        slowest = max(slowest, time.perf_counter() - t)
    wall = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"fuzz: {args.fuzz} inputs in {wall:.1f} s ({args.fuzz / wall:.0f}/s), exceptions "
          f"{errors}, frames out {frames}, slowest input {slowest * 1000:.2f} ms, max RSS "
          f"{rss1 / 1024:.0f} MB (+{(rss1 - rss0) / 1024:.1f} MB)")
    for k, t in targets.items():
        print(f"  {'signed' if k else 'unsigned'} intake: accepted {t.stats.frames_received}, "
              f"refused {dict(t.stats.foreign)}")
        t.close()


def main() -> None:
    args = link_args(__doc__, "--cap-bps", 64000)
    transfer(args)
    fuzz(args)


if __name__ == "__main__":
    main()
