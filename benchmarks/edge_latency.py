"""Per-stage latency of the edge sender and the ground receiver, for every backend present.

    OMP_NUM_THREADS=1 python benchmarks/edge_latency.py
        [--sizes 768x512 1024x768 1920x1080 4000x3000] [--repeats 3]
        [--backends torch onnxruntime tensorrt] [--device cpu] [--no-text] [--fusion]
        [--onnx-dir DIR] [--out FILE]

Each (backend, size) runs in its own process, so that its first call is a real first call
(ONNX Runtime sessions and the OCR models built) and its peak memory is its own: the
round trip of ``python -m uplink verify`` (:func:`textboost.pipeline.verify.round_trip`) on a
shipped Kodak image with rendered text, resized to the size: spotting beside g_a + h_a,
the budget search with its entropy coding, entropy decoding, g_s (and the fusion block
with ``--fusion``). Per stage: the first call, and the median and p90 of ``--repeats``
steady-state round trips; wall seconds and the process's CPU seconds (all threads);
peak RSS. Then the same image once more with today's search (``method="full"``: rates
on real bytes, scales compared by decoding) in the same process: its encode time and its
PSNR and bytes at the same budget, beside the predicted search's (``ratio`` new/old).
Backends that cannot run here (not installed, graphs not exported) are reported as
skipped with the reason. The exported backends need ``python -m export onnx`` first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
IMAGE = REPO / "link_sim" / "data" / "kodak_text" / "kodim03_text.png"


def _one(args) -> dict:
    """In the child: first call, steady state and today's search for one backend and size."""
    from textboost.codec.image import load_image, psnr_db, resize
    from textboost.pipeline.api import Pipeline
    from textboost.pipeline.verify import round_trip

    w, h = (int(v) for v in args.size.lower().split("x"))
    img = resize(load_image(args.image), w, h)
    codec = Pipeline.load(args.model, backend=args.one, device=args.device,
                       onnx_dir=args.onnx_dir, fusion=args.fusion)  # fmt: skip
    text = not args.no_text
    first, data, out, *_ = round_trip(codec, img, args.max_bytes, text)
    runs = [round_trip(codec, img, args.max_bytes, text) for _ in range(args.repeats)]
    steady = {}
    for k in runs[0][0]:
        v = np.array([r[0][k] for r in runs if k in r[0]])
        steady[k] = {"median_ms": 1000 * float(np.median(v)),
                     "p90_ms": 1000 * float(np.percentile(v, 90))}  # fmt: skip
    _, data, out, _, words = runs[-1]
    old, old_data, old_out, *_ = round_trip(codec, img, args.max_bytes, text, method="full")
    return {
        "backend": args.one,
        "size": args.size,
        "first_call_ms": {k: 1000 * v for k, v in first.items()},
        "steady": steady,
        "bytes": len(data),
        "psnr_db": float(psnr_db(img, out)),
        "words": len(words),
        "full_search": {
            "bytes": len(old_data),
            "psnr_db": float(psnr_db(img, old_out)),
            "encode_ms": 1000 * old["encode_total"],
            "encode_cpu_ms": 1000 * old["encode_cpu"],
        },
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--sizes", nargs="+", default=["768x512", "1024x768", "1920x1080", "4000x3000"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--backends", nargs="+", default=["torch", "onnxruntime", "tensorrt"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--model")
    p.add_argument("--onnx-dir")
    p.add_argument("--image", default=str(IMAGE))
    p.add_argument("--max-bytes", type=int, default=2000)
    p.add_argument("--no-text", action="store_true")
    p.add_argument("--fusion", action="store_true", help="decode through the fusion block")
    p.add_argument("--out", help="JSON results file")
    p.add_argument("--note", default="", help="recorded with the results (load, machine)")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--size", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(_one(args)))
        return 0
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "python": platform.python_version(),
                           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                           "load_average_at_start": os.getloadavg()},
               "settings": {k: v for k, v in vars(args).items() if k not in ("one", "size")},
               "backends": {}}  # fmt: skip
    for backend in args.backends:
        results["backends"][backend] = {}
        for size in args.sizes:
            cmd = [sys.executable, __file__, "--one", backend, "--size", size, *sys.argv[1:]]
            r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            if r.returncode != 0:
                reason = (r.stderr.strip().splitlines() or ["failed"])[-1]
                results["backends"][backend] = {"skipped": reason}
                print(f"{backend}: skipped ({reason})")
                break
            res = json.loads(r.stdout.strip().splitlines()[-1])
            res["load_average"] = os.getloadavg()
            results["backends"][backend][size] = res
            old = res["full_search"]
            ratio = res["steady"]["encode_total"]["median_ms"] / old["encode_ms"]
            print(f"{backend} ({args.device}) {size}: {res['bytes']} B, PSNR {res['psnr_db']:.2f} "
                  f"dB, {res['words']} words, peak RSS {res['peak_rss_mib']:.0f} MiB, load "
                  f"{res['load_average'][0]:.1f}; today's search: {old['bytes']} B, "
                  f"{old['psnr_db']:.2f} dB, encode {old['encode_ms']:.0f} ms "
                  f"({old['encode_cpu_ms']:.0f} CPU): ratio new/old {ratio:.2f}")  # fmt: skip
            print(f"    {'stage':26s} {'median ms':>10s} {'p90 ms':>10s} {'first call ms':>14s}")
            for k, v in res["steady"].items():
                print(f"    {k:26s} {v['median_ms']:10.1f} {v['p90_ms']:10.1f} "
                      f"{res['first_call_ms'].get(k, float('nan')):14.1f}")  # fmt: skip
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
