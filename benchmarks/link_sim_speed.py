"""link_sim speed and protocol goodput. Prints figures; asserts nothing.

1. A 24-hour cubesat day (scenarios/cubesat_uhf.yaml) with 500 captures, after one run
   that warms the encode/decode cache: simulated seconds per wall second.
   Target: >= 1e5.
2. Protocol goodput on a clean 9600 bit/s link with a saturated queue of real `.tbx`
   bundles: section payload delivered per second of link time / link rate.
   Target: >= 0.95.

    python benchmarks/link_sim_speed.py [--synthetic] [--cache DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from link_sim.codec_service import CodecService, default_cache_dir
from link_sim.mission import Mission
from link_sim.scenario import load_scenario


def day_speed(codec: CodecService, captures: int) -> None:
    s = load_scenario(
        "scenarios/cubesat_uhf.yaml",
        {
            "images.capture.count": str(captures),
            "images.capture.interval_s": str(86400 / captures),
        },
    )
    t0 = time.perf_counter()
    Mission(s, codec).run()
    cold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = Mission(s, codec).run()
    warm_s = time.perf_counter() - t0
    frames = res.forward.log.frames + (res.reverse.log.frames if res.reverse else 0)
    delivered = sum(r.delivered_s is not None for r in res.records)
    print(f"cubesat day: {captures} captures, {frames} frames, {delivered} images delivered")
    print(f"  first run (cache as found): {cold_s:.2f} s wall; distinct encodes "
          f"{codec.encodes}, decodes {codec.decodes}")
    print(f"  warm run: {warm_s:.2f} s wall = {s.duration_s / warm_s:,.0f} simulated s per "
          "wall s (target >= 100,000)")


def clean_goodput(codec: CodecService, rate_bps: float, images: int) -> None:
    s = load_scenario(
        "scenarios/rescue.yaml",
        {
            "link.forward": f"{{rate_bps: {rate_bps}, delay_s: 0.01, mtu_bytes: 256}}",
            "link.reverse": f"{{rate_bps: {rate_bps}, delay_s: 0.01, mtu_bytes: 256}}",
            "images.capture": f"{{start_s: 0.0, interval_s: 0.001, count: {images}}}",
            "sender.max_in_flight": str(images),
            "protocol.arq": "deferred",
            "protocol.policy": "fifo",
            "duration_s": "3600",
        },
    )
    res = Mission(s, codec).run()
    recs = [r for r in res.records if r.delivered_s is not None]
    first = min(r.first_byte_s for r in recs)
    last = max(r.delivered_s for r in recs)
    link_s = last - first - s.link.forward.delay_s
    payload = sum(r.payload_bytes for r in recs)
    st = res.uplink.sender.stats
    print(f"clean link {rate_bps:.0f} bit/s, MTU 256, {len(recs)}/{images} bundles of "
          f"{payload / len(recs):.0f} payload bytes on average")
    print(f"  protocol efficiency (payload / on-air bytes): {st.efficiency:.4f}")
    print(f"  goodput: {8 * payload / link_s:.1f} bit/s = "
          f"{8 * payload / link_s / rate_bps:.4f} of the link rate (target >= 0.95)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", action="store_true", help="random .tbx payloads, no codec")
    ap.add_argument("--cache", type=Path, default=default_cache_dir())
    ap.add_argument("--captures", type=int, default=500)
    args = ap.parse_args()
    codec = CodecService(args.cache, synthetic=args.synthetic)
    print(f"codec: {codec.name}")
    day_speed(codec, args.captures)
    clean_goodput(codec, 9600.0, 12)


if __name__ == "__main__":
    main()
