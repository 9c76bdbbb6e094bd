"""A field trial rehearsed on one machine, then replayed on the simulator.

Starts ``python -m downlink serve`` and ``python -m uplink serve`` (the field services) with
``python -m link_sim proxy`` between them, drops ``--images`` synthetic `.tbx` streams of
1.0-1.8 kB into the vehicle's drop folder, one every ``--interval-s``, waits until the ground
has delivered them all, stops everything with SIGTERM, and runs ``python -m link_sim
replay`` on the two event logs against the scenario the proxy applied: measured and
simulated latency per image, median and p95 and their ratio.

    python benchmarks/rehearsal.py                      # 10 images, 9600 bit/s, burst loss
    python benchmarks/rehearsal.py --images 20 --rate-bps 4800 --keep /tmp/trial

The channel (both ways): ``--rate-bps``, 50 ms, MTU 256, Gilbert-Elliott p 0.05 r 0.3 with
70 % loss in the bad state (about 10 %); protocol deferred ARQ, RTO and NAK timeout 2 s,
HMAC with a fresh random key. No codec runs (the streams are already encoded).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from link_sim.payloads import synthetic_container  # noqa: E402


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(d: Path, rate_bps: float) -> tuple[Path, Path, int, int]:
    ground, proxy = free_port(), free_port()
    (d / "key").write_bytes(secrets.token_bytes(32))
    link = {"mtu_bytes": 256, "arq": "deferred", "rto_s": 2.0, "nak_timeout_s": 2.0,
            "max_retries": 8}
    cfg = {
        "link": {**link, "key_file": "key", "key_id": 1},
        "uplink": {"drop_dir": "drop", "intake": None, "state_db": "uplink.db",
                   "event_log": "uplink.jsonl", "peer": f"127.0.0.1:{proxy}",
                   "rate_bps": rate_bps, "max_in_flight": 2, "poll_s": 0.2},
        "downlink": {"listen": f"127.0.0.1:{ground}", "out_dir": "received",
                     "state_db": "downlink.db", "event_log": "downlink.jsonl",
                     "decode": False, "progressive": False},
    }
    (d / "field.yaml").write_text(yaml.safe_dump(cfg))
    raw = yaml.safe_load((ROOT / "scenarios/rescue.yaml").read_text())
    channel = {"rate_bps": rate_bps, "delay_s": 0.05, "mtu_bytes": 256,
               "burst": {"p": 0.05, "r": 0.3, "loss_good": 0.0, "loss_bad": 0.7}}
    raw.update(name="rehearsal", seed=3, runs=1, duration_s=3600)
    raw["link"] = {"forward": channel, "reverse": dict(channel)}
    raw["protocol"] = link
    raw["sender"]["max_in_flight"] = 2
    raw["images"]["set"] = str(ROOT / "link_sim/data/kodak_text")
    (d / "scenario.yaml").write_text(yaml.safe_dump(raw))
    return d / "field.yaml", d / "scenario.yaml", ground, proxy


def delivered(log: Path) -> int:
    if not log.exists():
        return 0
    return sum(json.loads(line)["event"] == "delivered" for line in log.read_text().splitlines()
               if line.strip())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=10)
    p.add_argument("--interval-s", type=float, default=3.0)
    p.add_argument("--rate-bps", type=float, default=9600.0)
    p.add_argument("--timeout-s", type=float, default=300.0)
    p.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: temp)")
    args = p.parse_args()
    d = args.keep or Path(tempfile.mkdtemp(prefix="rehearsal-"))
    d.mkdir(parents=True, exist_ok=True)
    field, scenario, ground, proxy = setup(d, args.rate_bps)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    py = sys.executable

    def start(*argv: str, out: str) -> subprocess.Popen:
        return subprocess.Popen([py, "-m", *argv], cwd=ROOT, env=env,
                                stdout=open(d / out, "w"), stderr=subprocess.STDOUT)

    procs = [
        start("link_sim", "proxy", "--scenario", str(scenario), "--listen", str(proxy),
              "--to", f"127.0.0.1:{ground}", "--seed", "1", out="proxy.out"),
        start("downlink", "serve", "--config", str(field), out="downlink.out"),
    ]
    time.sleep(2.0)
    procs.append(start("uplink", "serve", "--config", str(field), out="uplink.out"))
    drop = d / "drop"
    drop.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    t0 = time.monotonic()
    try:
        for i in range(args.images):
            data = synthetic_container(b"img%d" % i, 768, 512, int(rng.integers(1000, 1800)),
                                       text=b"EXIT %d" % i)
            tmp = drop / f"img{i:02d}.tbx.tmp"
            tmp.write_bytes(data)
            tmp.rename(drop / f"img{i:02d}.tbx")
            time.sleep(args.interval_s)
        while delivered(d / "downlink.jsonl") < args.images:
            if time.monotonic() - t0 > args.timeout_s:
                print(f"timeout: {delivered(d / 'downlink.jsonl')} of {args.images} delivered")
                break
            time.sleep(0.5)
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
    print(f"rehearsal in {d}: {delivered(d / 'downlink.jsonl')} of {args.images} images "
          f"delivered in {time.monotonic() - t0:.1f} s")
    print((d / "proxy.out").read_text().strip())
    replay = subprocess.run(
        [py, "-m", "link_sim", "replay", str(d / "uplink.jsonl"), str(d / "downlink.jsonl"),
         "--scenario", str(scenario), "--cache", str(d / "cache")],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    print(replay.stdout + replay.stderr, end="")
    return replay.returncode


if __name__ == "__main__":
    sys.exit(main())
