"""Kodak bpp / PSNR of the shipped model at byte budgets and at fixed rates, from real bytes.

    python benchmarks/kodak_budgets.py [--bpp 0.03 0.06 0.12] [--rates 0 0.5 1] [--json]

For each budget every image is coded with encode_to_budget(bpp=...), so the whole file
(header, z, y groups) is counted; PSNR is on RGB 0–255 per image, then averaged.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from textboost import Codec
from textboost.codec.api import BudgetError
from textboost.codec.image import load_image

KODAK = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "kodak"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", default=str(KODAK))
    p.add_argument("--bpp", type=float, nargs="*", default=[0.03, 0.06, 0.12])
    p.add_argument("--rates", type=float, nargs="*", default=[0.0, 0.5, 1.0])
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    codec = Codec.load()
    paths = sorted(Path(args.dataset).glob("*.png"))
    rows = []
    t0 = time.time()
    images = [load_image(q) for q in paths]
    analyses = [codec.analyse(im) for im in images]
    settings = [("bpp", b) for b in args.bpp] + [("rate", r) for r in args.rates]
    for kind, value in settings:
        bpps, psnrs, misses = [], [], 0
        for im, an in zip(images, analyses, strict=True):
            h, w = im.shape[:2]
            try:
                if kind == "bpp":
                    data = codec.fit_budget(an, int(value * h * w / 8))
                else:
                    data = codec.encode_analysis(an, round(value * 65535))
            except BudgetError:
                misses += 1
                continue
            bpps.append(8 * len(data) / (h * w))
            psnrs.append(psnr(codec.decode(data), im))
        rows.append(
            {
                "setting": f"{kind} {value:g}",
                "images": len(bpps),
                "no_fit": misses,
                "bpp": float(np.mean(bpps)) if bpps else None,
                "psnr_db": float(np.mean(psnrs)) if psnrs else None,
            }
        )
    out = {
        "model_id": codec.model_id.hex(),
        "dataset": args.dataset,
        "seconds": time.time() - t0,
        "rows": rows,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"model {out['model_id']} on {len(paths)} images of {args.dataset}")
    print(f"{'setting':<12}{'images':>8}{'bpp':>10}{'PSNR dB':>10}")
    for r in rows:
        b = "-" if r["bpp"] is None else f"{r['bpp']:.4f}"
        q = "-" if r["psnr_db"] is None else f"{r['psnr_db']:.2f}"
        print(f"{r['setting']:<12}{r['images']:>8}{b:>10}{q:>10}")


if __name__ == "__main__":
    main()
