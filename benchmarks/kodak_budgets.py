"""Kodak bpp / PSNR of a model at byte budgets and at fixed rates, from real bytes.

    python benchmarks/kodak_budgets.py [--bpp 0.03 0.06 0.12] [--rates 0 0.5 1] [--model F]
        [--limit N] [--json]

For each budget every image is coded with encode_to_budget(bpp=...), so the whole file
(header, z, y groups) is counted; PSNR is on RGB 0–255 per image, then averaged.
"search ms" is the mean wall time of the budget search per image after g_a (rate
search, and smaller scales analysed, coded and decoded where it compares them), "CPU ms"
the process's CPU time for it (all threads; with OMP_NUM_THREADS=1 the steadier figure on
a shared machine); "smaller" counts the images coded below full size.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from textboost import Pipeline
from textboost.bitstream.container import FULL_SCALE, Container
from textboost.codec.budget import BudgetError, fit_budget
from textboost.codec.image import load_image, psnr_db
from textboost.codec.rate import bpp_of, budget_bytes

KODAK = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "kodak"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", default=str(KODAK))
    p.add_argument("--model", default=None, help="model file (default: the shipped one)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images (by name)")
    p.add_argument("--bpp", type=float, nargs="*", default=[0.03, 0.06, 0.12])
    p.add_argument("--rates", type=float, nargs="*", default=[0.0, 0.5, 1.0])
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    codec = Pipeline.load(args.model)
    paths = sorted(Path(args.dataset).glob("*.png"))[: args.limit]
    rows = []
    t0 = time.time()
    images = [load_image(q) for q in paths]
    analyses = [codec.analyse(im, text=False) for im in images]  # the codec alone
    settings = [("bpp", b) for b in args.bpp] + [("rate", r) for r in args.rates]
    for kind, value in settings:
        bpps, psnrs, secs, cpus, misses, smaller = [], [], [], [], 0, 0
        for im, an in zip(images, analyses, strict=True):
            h, w = im.shape[:2]
            t, c = time.perf_counter(), time.process_time()
            try:
                if kind == "bpp":
                    data = fit_budget(codec.codec, an, budget_bytes(value, w, h))
                else:
                    data = codec.codec.encode_analysis(an, round(value * 65535))
            except BudgetError:
                misses += 1
                continue
            secs.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
            smaller += Container.parse(data).header.scale != FULL_SCALE
            bpps.append(bpp_of(len(data), w, h))
            psnrs.append(psnr_db(codec.decode(data), im))
        rows.append(
            {
                "setting": f"{kind} {value:g}",
                "images": len(bpps),
                "no_fit": misses,
                "bpp": float(np.mean(bpps)) if bpps else None,
                "psnr_db": float(np.mean(psnrs)) if psnrs else None,
                "search_ms": 1e3 * float(np.mean(secs)) if secs else None,
                "cpu_ms": 1e3 * float(np.mean(cpus)) if cpus else None,
                "smaller": smaller,
            }
        )
    out = {
        "model_id": codec.model_id.hex(),
        "dataset": args.dataset,
        "seconds": time.time() - t0,
        "load_average": os.getloadavg()[0],
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "rows": rows,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"model {out['model_id']} on {len(paths)} images of {args.dataset}")
    print(f"load average {out['load_average']:.1f}, OMP_NUM_THREADS={out['omp_num_threads']}")
    print(f"{'setting':<12}{'images':>8}{'bpp':>10}{'PSNR dB':>10}{'search ms':>11}"
          f"{'CPU ms':>9}{'smaller':>9}")
    for r in rows:
        b = "-" if r["bpp"] is None else f"{r['bpp']:.4f}"
        q = "-" if r["psnr_db"] is None else f"{r['psnr_db']:.2f}"
        m = "-" if r["search_ms"] is None else f"{r['search_ms']:.0f}"
        c = "-" if r["cpu_ms"] is None else f"{r['cpu_ms']:.0f}"
        print(f"{r['setting']:<12}{r['images']:>8}{b:>10}{q:>10}{m:>11}{c:>9}{r['smaller']:>9}")


if __name__ == "__main__":
    main()
