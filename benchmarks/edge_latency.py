"""Per-stage latency of the edge sender and the ground receiver, for every backend present.

    python benchmarks/edge_latency.py [--sizes 1024x768 1920x1080] [--repeats 5]
        [--backends torch onnxruntime tensorrt] [--device cpu] [--no-text] [--out FILE]

Each backend runs in its own process (so that its peak memory is its own) the round trip
of ``python -m export verify`` on a shipped Kodak image with rendered text, resized to
each size: OCR spotting, g_a + h_a, budget search with entropy coding, entropy decoding,
g_s and the fusion block. Prints median and p90 per stage, and peak RSS; writes JSON
(with the machine and the backend's versions) to ``--out``. Backends that cannot run here
(not installed, graphs not exported) are reported as skipped with the reason.
Needs ``python -m export onnx`` first for the exported backends (default cache folder).
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
    """In the child: the stage times of ``repeats`` round trips per size for one backend."""
    from export.verify import verify
    from textboost.codec.image import load_image, resize

    src = load_image(args.image)
    out = {"backend": args.one, "sizes": {}}
    for size in args.sizes:
        w, h = (int(v) for v in size.lower().split("x"))
        img = resize(src, w, h)
        runs = []
        for _ in range(args.repeats + 1):  # the first run warms up (sessions, OCR models)
            r = verify(args.model, backend=args.one, device=args.device, onnx_dir=args.onnx_dir,
                       image=img, max_bytes=args.max_bytes, text=not args.no_text)  # fmt: skip
            runs.append(r["seconds"])
        runs = runs[1:]
        stages = {}
        for k in runs[0]:
            v = np.array([r[k] for r in runs if k in r])
            stages[k] = {"median_ms": 1000 * float(np.median(v)),
                         "p90_ms": 1000 * float(np.percentile(v, 90))}  # fmt: skip
        out["sizes"][size] = {"stages": stages, "bytes": r["bytes"], "psnr_db": r["psnr_db"],
                              "words": r["words"], "entropy_coder": r["entropy_coder"]}  # fmt: skip
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--sizes", nargs="+", default=["1024x768", "1920x1080"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--backends", nargs="+", default=["torch", "onnxruntime", "tensorrt"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--model")
    p.add_argument("--onnx-dir")
    p.add_argument("--image", default=str(IMAGE))
    p.add_argument("--max-bytes", type=int, default=2000)
    p.add_argument("--no-text", action="store_true")
    p.add_argument("--out", help="JSON results file")
    p.add_argument("--note", default="", help="recorded with the results (load, machine)")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(_one(args)))
        return 0
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "python": platform.python_version(),
                           "load_average_at_start": os.getloadavg()},
               "settings": {k: v for k, v in vars(args).items() if k != "one"},
               "backends": {}}  # fmt: skip
    for backend in args.backends:
        cmd = [sys.executable, __file__, "--one", backend, *sys.argv[1:]]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        if r.returncode != 0:
            reason = (r.stderr.strip().splitlines() or ["failed"])[-1]
            results["backends"][backend] = {"skipped": reason}
            print(f"{backend}: skipped ({reason})")
            continue
        res = json.loads(r.stdout.strip().splitlines()[-1])
        results["backends"][backend] = res
        print(f"{backend} ({args.device}), peak RSS {res['peak_rss_mib']:.0f} MiB")
        for size, s in res["sizes"].items():
            print(f"  {size}: {s['bytes']} bytes, PSNR {s['psnr_db']:.2f} dB, "
                  f"{s['words']} words, {s['entropy_coder']} coder")  # fmt: skip
            for k, v in s["stages"].items():
                print(f"    {k:26s} median {v['median_ms']:9.1f} ms   p90 {v['p90_ms']:9.1f} ms")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
