"""Why budgets near 0.03 bpp code Kodak smaller: the bottom of the model's rate range.

    python benchmarks/lowest_rates.py [--limit 6] [--scales 8 12 16] [--rates 0 0.15 0.3 0.5 0.75 1]
        [--bpp 0.03] [--model F]

For the first N Kodak images (full size), at each coded scale (eighths: 8 = full, 12 = 2/3,
16 = 1/2) and rate: the whole-file bpp of the source image, the bytes of z and of y
(header and the empty text section are the rest), and PSNR at full size (decoded without
the fusion block, resized up). Then, per scale, the PSNR at ``--bpp`` interpolated on log
bpp between the rates measured (what the budget search chooses between), and the y and z
log2 gains at the model's anchors (the rates where the gains were learned).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from textboost import Codec
from textboost.bitstream.container import Container, coded_size
from textboost.codec.image import load_image, psnr_db

KODAK = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "kodak"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", default=str(KODAK))
    p.add_argument("--model", default=None)
    p.add_argument("--limit", type=int, default=6)
    p.add_argument("--scales", type=int, nargs="*", default=[8, 12, 16])
    p.add_argument("--rates", type=float, nargs="*", default=[0.0, 0.15, 0.3, 0.5, 0.75, 1.0])
    p.add_argument("--bpp", type=float, default=0.03)
    args = p.parse_args()
    codec = Codec.load(args.model)
    paths = sorted(Path(args.dataset).glob("*.png"))[: args.limit]
    # rows[(scale, rate)] = list of (bpp, z bytes, y bytes, psnr) per image
    rows: dict[tuple[int, float], list[tuple[float, int, int, float]]] = {}
    for path in paths:
        img = load_image(path)
        h, w = img.shape[:2]
        an = codec.analyse(img)
        for scale in args.scales:
            a = an if scale == an.scale else codec.analyse_smaller(an, scale)
            for rate in args.rates:
                data = codec.encode_analysis(a, round(rate * 65535))
                c = Container.parse(data)
                psnr = psnr_db(codec.decode(data), img)
                y = sum(len(g) for g in c.groups)
                rows.setdefault((scale, rate), []).append(
                    (8 * len(data) / (w * h), len(c.z), y, psnr)
                )
        print(f"{path.name} done", flush=True)
    print(f"\n{len(paths)} Kodak images, full size; whole-file bpp of the source image")
    print("scale  coded      rate   bpp      z B    y B   z share  PSNR dB")
    for (scale, rate), r in sorted(rows.items()):
        a = np.array(r)
        cw, ch = coded_size(768, 512, scale)
        print(f"{scale:>5}  {cw}x{ch:<5}  {rate:.2f}  {a[:, 0].mean():.4f}  {a[:, 1].mean():5.0f}"
              f"  {a[:, 2].mean():5.0f}  {a[:, 1].sum() / (a[:, 1] + a[:, 2]).sum():6.1%}"
              f"  {a[:, 3].mean():7.2f}")  # fmt: skip
    print(f"\nPSNR at {args.bpp} bpp, interpolated per image on log bpp between measured rates")
    for scale in args.scales:
        vals = []
        for i in range(len(paths)):
            pts = sorted((rows[scale, rt][i][0], rows[scale, rt][i][3]) for rt in args.rates)
            b, q = np.array(pts).T
            if b[0] <= args.bpp <= b[-1]:
                vals.append(float(np.interp(np.log(args.bpp), np.log(b), q)))
        lowest = np.mean([rows[scale, min(args.rates)][i][0] for i in range(len(paths))])
        got = f"{np.mean(vals):.2f} dB ({len(vals)} of {len(paths)} images)" if vals else "—"
        print(f"  scale {scale:>3}: {got}; lowest rate {lowest:.4f} bpp")
    y_g = codec.gain_anchors_q6.mean(axis=1) / 64
    z_g = codec.z_gain_anchors_q6.mean(axis=1) / 64
    print("\nmean log2 gain per rate anchor (lowest rate first)")
    print("  y: " + " ".join(f"{v:+.2f}" for v in y_g))
    print("  z: " + " ".join(f"{v:+.2f}" for v in z_g))
    print(f"  λ: {codec.cfg.lambda_min:g} … {codec.cfg.lambda_max:g} (geometric in rate)")


if __name__ == "__main__":
    main()
