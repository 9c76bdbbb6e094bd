"""kill -9 of the field services at random points, then restart: prints what was lost,
duplicated and resent.

Both services (``python -m uplink serve`` / ``python -m downlink serve``) run as
subprocesses on loopback with a ``field.yaml`` in a temporary folder (tests/field_harness.py);
pre-encoded `.tbx` images (64x48 headers, ~0.4-1.8 kB) keep arriving in the drop folder (two
per kill); one side (alternating, or chosen at random with ``--random-side``) gets SIGKILL at
a random point 0..1 s after it came up (its ``restart`` event), and is restarted at once.
At the end the run waits until every image is acknowledged and audits the output folder,
the edge's SQLite queue and both event logs.

    python benchmarks/field_kill.py [--kills 50] [--seed 0] [--json]

Figures: lost (sent, never stored at the ground), duplicated (stored or announced twice),
acked_resent (submitted again after its FIN was recorded), resubmitted / resubmitted_bytes
(images, and their bytes, sent again under a new epoch because a kill came before their
ack), duplicates_suppressed (resends the ground recognised by SHA-256), wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.field_harness import Trial, tbx


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kills", type=int, default=50)
    p.add_argument("--images-per-kill", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate-bps", type=int, default=40_000)
    p.add_argument("--max-delay-s", type=float, default=1.0, help="kill 0..this s after up")
    p.add_argument("--random-side", action="store_true", help="kill a random side each time")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        trial = Trial(Path(tmp), rate_bps=args.rate_bps)
        trial.start_and_wait("downlink")
        trial.start_and_wait("uplink")
        n = 0
        sides = {"uplink": 0, "downlink": 0}
        for k in range(args.kills):
            for _ in range(args.images_per_kill):
                trial.drop(f"img{n:04d}.tbx", tbx(rng))
                n += 1
            time.sleep(float(rng.uniform(0.0, args.max_delay_s)))
            if args.random_side:
                node = ("uplink", "downlink")[int(rng.integers(2))]
            else:
                node = ("uplink", "downlink")[k % 2]
            trial.kill(node)
            sides[node] += 1
            trial.start_and_wait(node)
        finished = trial.wait_acked(n, timeout_s=120)
        errors = trial.stop_all()
        audit = trial.audit()
    result = {
        "kills": trial.kills,
        "kills_uplink": sides["uplink"],
        "kills_downlink": sides["downlink"],
        "all_acked": finished,
        **audit,
        "wall_s": round(time.monotonic() - t0, 1),
        "stderr": errors.strip(),
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for k, v in result.items():
            print(f"{k:>22}: {v}")
    ok = finished and audit["lost"] == audit["duplicated"] == audit["acked_resent"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
