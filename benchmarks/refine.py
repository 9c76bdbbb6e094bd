"""Encoder-side latent refinement (``effort``): PSNR, bytes and encode time at a budget.

    python benchmarks/refine.py [--limit 4] [--bpp 0.03] [--efforts 0 1 2] [--crop WxH]
        [--model F] [--json]

Each of the first N Kodak images (by name; full size unless ``--crop`` takes a centred
crop) is coded with ``encode_to_budget(bpp=..., text=False, effort=e)`` for each effort,
on torch CPU with one thread: whole-file bytes, PSNR (RGB, decoded without the fusion
block, at full size) and wall seconds of the whole encode (g_a, budget search,
refinement, rate search again and comparisons) per source megapixel. "refined" counts the
images where the refined stream won (otherwise effort > 0 returns the effort-0 stream).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from textboost import Codec
from textboost.bitstream.container import Container
from textboost.codec.image import load_image, psnr_db
from textboost.codec.rate import budget_bytes
from textboost.codec.refine import EFFORT_ITERATIONS

KODAK = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "kodak"


def _crop(img: np.ndarray, spec: str | None) -> np.ndarray:
    if spec is None:
        return img
    w, h = (int(v) for v in spec.lower().split("x"))
    y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return img[max(y0, 0) : max(y0, 0) + h, max(x0, 0) : max(x0, 0) + w].copy()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", default=str(KODAK))
    p.add_argument("--model", default=None, help="model file (default: the shipped one)")
    p.add_argument("--limit", type=int, default=4, help="the first N images by name (4)")
    p.add_argument("--bpp", type=float, default=0.03)
    p.add_argument("--efforts", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument("--crop", help="centred crop WxH (default: full images)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    codec = Codec.load(args.model)
    paths = sorted(Path(args.dataset).glob("*.png"))[: args.limit]
    per: dict[int, list[dict]] = {e: [] for e in args.efforts}
    for path in paths:
        img = _crop(load_image(path), args.crop)
        h, w = img.shape[:2]
        budget = budget_bytes(args.bpp, w, h)
        for e in args.efforts:
            t = time.perf_counter()
            data = codec.encode_to_budget(img, bpp=args.bpp, effort=e)
            secs = time.perf_counter() - t
            hd = Container.parse(data).header
            row = {
                "image": path.name, "effort": e, "budget": budget, "bytes": len(data),
                "psnr": psnr_db(codec.decode(data), img), "seconds": secs,
                "s_per_mp": secs / (w * h / 1e6), "coded": list(hd.coded_size),
                "rate": hd.rate, "data": data,
            }  # fmt: skip
            per[e].append(row)
            print(
                f"{path.name} {w}x{h} effort {e}: {len(data)}/{budget} B, coded "
                f"{hd.coded_size[0]}x{hd.coded_size[1]} rate {hd.rate / 65535:.3f}, "
                f"{row['psnr']:.3f} dB, {secs:.1f} s",
                flush=True,
            )
    base = per.get(0)
    summary = []
    print(f"\n{len(paths)} images ({args.crop or 'full size'}), budget {args.bpp} bpp, torch CPU "
          f"1 thread, text off")  # fmt: skip
    print("effort  iters  bytes   PSNR dB   vs effort 0   refined   s/image   s/MP")
    for e, rows in per.items():
        psnr = float(np.mean([r["psnr"] for r in rows]))
        gain = psnr - float(np.mean([r["psnr"] for r in base])) if base else float("nan")
        won = sum(r["data"] != b["data"] for r, b in zip(rows, base, strict=True)) if base else 0
        s = {
            "effort": e, "iterations": EFFORT_ITERATIONS[e],
            "bytes": float(np.mean([r["bytes"] for r in rows])), "psnr": psnr,
            "gain_db": gain, "refined": won,
            "seconds": float(np.mean([r["seconds"] for r in rows])),
            "s_per_mp": float(np.mean([r["s_per_mp"] for r in rows])),
        }  # fmt: skip
        summary.append(s)
        print(f"{e:>6}  {s['iterations']:>5}  {s['bytes']:>6.1f}  {psnr:>7.3f}   {gain:>+9.3f}"
              f"   {won:>3}/{len(rows)}   {s['seconds']:>7.1f}  {s['s_per_mp']:>5.1f}")  # fmt: skip
    if args.json:
        for rows in per.values():
            for r in rows:
                del r["data"]
        print(json.dumps({"summary": summary, "images": per}, indent=1))


if __name__ == "__main__":
    main()
