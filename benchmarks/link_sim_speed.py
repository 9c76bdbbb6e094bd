"""link_sim speed and protocol goodput. Prints figures; asserts nothing.

1. A 24-hour cubesat day (scenarios/cubesat_uhf.yaml) with 500 captures, after one run
   that warms the encode/decode cache: simulated seconds per wall second.
   Target: >= 1e5.
2. Protocol goodput on a clean 9600 bit/s link with a saturated queue of real `.tbx`
   bundles (all stored at t = 0): section payload delivered per second of link time / link
   rate. Target: >= 0.95. Then the same with the scenario's serial encode latency, where a
   bundle that takes less time on air than one encode leaves the link idle.

    python benchmarks/link_sim_speed.py [--synthetic] [--cache DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from link_sim.codec_service import CodecService, default_cache_dir
from link_sim.link import FrameLog
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


def _busy_s(log: FrameLog, start_s: float, end_s: float) -> float:
    """Seconds of ``log``'s airtime inside [start_s, end_s]."""
    return sum(max(0.0, min(t + a, end_s) - max(t, start_s))
               for t, a in zip(log.start_s, log.airtime_s, strict=True))


def clean_goodput(codec: CodecService, rate_bps: float, images: int,
                  encode: bool = False) -> None:
    """Goodput with every bundle stored at t = 0 (``encode=False``: the encoder takes no
    time, so the queue is saturated and the figure is the protocol's), or with the
    scenario's serial encode latency (``encode=True``: the encoder feeds the link)."""
    overrides = {
        "link.forward": f"{{rate_bps: {rate_bps}, delay_s: 0.01, mtu_bytes: 256}}",
        "link.reverse": f"{{rate_bps: {rate_bps}, delay_s: 0.01, mtu_bytes: 256}}",
        "images.capture": f"{{start_s: 0.0, interval_s: 0.001, count: {images}}}",
        "sender.max_in_flight": str(images),
        "protocol.arq": "deferred",
        "protocol.policy": "fifo",
        "duration_s": "3600",
    }
    if not encode:
        overrides["sender.backend"] = "torch-cpu"
        overrides["sender.encode_latency_s"] = "{torch-cpu: {analysis: 0.0}}"
    s = load_scenario("scenarios/rescue.yaml", overrides)
    res = Mission(s, codec).run()
    recs = [r for r in res.records if r.delivered_s is not None]
    first = min(r.first_byte_s for r in recs)
    last = max(r.delivered_s for r in recs)
    link_s = last - first - s.link.forward.delay_s
    payload = sum(r.payload_bytes for r in recs)
    st = res.uplink.sender.stats
    fwd = res.forward.log
    end = last - s.link.forward.delay_s
    fwd_s = _busy_s(fwd, first, end)
    rev_s = _busy_s(res.reverse.log, first, end) if res.reverse is not None else 0.0
    gaps = [fwd.start_s[i] - fwd.start_s[i - 1] - fwd.airtime_s[i - 1]
            for i in range(1, fwd.frames)]
    print(f"clean link {rate_bps:.0f} bit/s, MTU 256, {len(recs)}/{images} bundles of "
          f"{payload / len(recs):.0f} payload bytes on average, "
          + (f"serial encoder {s.sender.encode_s:.3f} s per image" if encode
             else "all stored at t = 0 (no encode latency: saturated queue)"))
    print(f"  protocol efficiency (payload / on-air bytes): {st.efficiency:.4f}")
    print(f"  forward link busy {fwd_s / link_s:.4f} of {link_s:.2f} s; reverse frames "
          f"{rev_s / link_s:.4f} (half duplex: {s.link.half_duplex}); forward gaps over "
          f"20 ms: {sum(g > 0.02 for g in gaps)} totalling "
          f"{sum(g for g in gaps if g > 0.02):.2f} s")
    print(f"  goodput: {8 * payload / link_s:.1f} bit/s = "
          f"{8 * payload / link_s / rate_bps:.4f} of the link rate"
          + ("" if encode else " (target >= 0.95)"))


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
    clean_goodput(codec, 9600.0, 12, encode=True)


if __name__ == "__main__":
    main()
