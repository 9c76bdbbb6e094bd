"""The fusion block as a post-filter: PSNR with and without it on images without text.

    python benchmarks/fusion_postfilter.py [--bpp 0.03] [--limit N] [--fusion F] [--json]

Each image is coded with encode_to_budget(bpp=..., text=False) and decoded by the codec
alone; the fusion block then runs with an all-zero guidance map (what the receiver does
when no words were sent). PSNR on RGB 0–255 per image, then averaged. Kodak is a test set
here: the block was trained on other photos and never tuned on it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from textboost import Pipeline
from textboost.codec.image import load_image, psnr_db
from textboost.codec.weights import fusion_path
from textboost.fusion.runtime import apply_fusion, load_fusion

KODAK = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "kodak"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", default=str(KODAK))
    p.add_argument("--bpp", type=float, nargs="*", default=[0.03])
    p.add_argument("--limit", type=int, default=None, help="only the first N images (by name)")
    p.add_argument("--fusion", default=None, help="fusion weights (default: beside the model)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    codec = Pipeline.load(fusion=False)
    block = load_fusion(args.fusion or fusion_path(codec.model.path), codec.model_id)
    paths = sorted(Path(args.dataset).glob("*.png"))[: args.limit]
    out = {}
    for bpp in args.bpp:
        rows = []
        for path in paths:
            img = load_image(path)
            dec = codec.decode(codec.encode_to_budget(img, bpp=bpp, text=False), fusion=False)
            rows.append((psnr_db(dec, img), psnr_db(apply_fusion(block, dec, None), img)))
        a = np.array(rows)
        out[str(bpp)] = {
            "images": len(rows),
            "codec": float(a[:, 0].mean()),
            "fused": float(a[:, 1].mean()),
            "gain": float((a[:, 1] - a[:, 0]).mean()),
            "improved": int((a[:, 1] > a[:, 0]).sum()),
        }
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{'bpp':>6} {'images':>6} {'codec dB':>9} {'fused dB':>9} {'gain':>7} improved")
    for bpp, r in out.items():
        print(
            f"{bpp:>6} {r['images']:>6} {r['codec']:9.2f} {r['fused']:9.2f} "
            f"{r['gain']:+7.3f} {r['improved']}/{r['images']}"
        )


if __name__ == "__main__":
    main()
