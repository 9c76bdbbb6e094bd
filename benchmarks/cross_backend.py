"""The exactness claim at scale: streams encoded on one backend/device decode to the same
latents on every other, and how often the encoders' streams differ at all.

    python benchmarks/cross_backend.py [--n 200] [--backends torch:cpu onnxruntime:cpu ...]
        [--onnx-dir DIR] [--out FILE]

Each stream: a random crop (64..512 px a side) of a Kodak image at a random rate, encoded
by every backend (``text=False``); each stream is decoded (``decode_latents``) by every
backend and compared with the latents its encoder coded. Counts mismatches (must be 0),
and streams whose bytes differ between encoders (allowed: the analysis transforms are
float and may round a latent differently; each stream still decodes identically
everywhere). Backends written ``name:device``, e.g. ``torch:cuda``, ``onnxruntime:cuda``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
KODAK = [REPO.parent / "shared" / "data" / "kodak", REPO / "link_sim" / "data" / "kodak"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--backends", nargs="+", default=["torch:cpu", "onnxruntime:cpu"])
    p.add_argument("--model")
    p.add_argument("--onnx-dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out")
    args = p.parse_args()
    from textboost import Codec
    from textboost.codec.image import load_image

    folder = next(d for d in KODAK if d.is_dir())
    images = [load_image(f) for f in sorted(folder.glob("kodim*.png"))]
    codecs = {}
    for spec in args.backends:
        name, _, device = spec.partition(":")
        codecs[spec] = Codec.load(args.model, backend=name, device=device or "cpu",
                                  onnx_dir=args.onnx_dir)  # fmt: skip
    rng = np.random.default_rng(args.seed)
    counts = {"streams": 0, "decodes": 0, "latent_mismatches": 0, "encoder_pairs": 0,
              "encoder_pairs_with_different_bytes": 0}  # fmt: skip
    mismatches = []
    t0 = time.perf_counter()
    for i in range(args.n):
        img = images[int(rng.integers(len(images)))]
        h, w = (int(rng.integers(64, min(512, s) + 1)) for s in img.shape[:2])
        y0, x0 = int(rng.integers(img.shape[0] - h + 1)), int(rng.integers(img.shape[1] - w + 1))
        crop = np.ascontiguousarray(img[y0 : y0 + h, x0 : x0 + w])
        rate_q = int(rng.integers(0, 65536))
        streams = {}
        for spec, enc in codecs.items():
            an = enc.analyse(crop)
            _, _, y_coded = enc.code_latents(an, rate_q)
            data = enc.encode_analysis(an, rate_q)
            streams[spec] = data
            counts["streams"] += 1
            for dspec, dec in codecs.items():
                _, y = dec.decode_latents(data)
                counts["decodes"] += 1
                if not np.array_equal(y, y_coded):
                    counts["latent_mismatches"] += 1
                    mismatches.append({"i": i, "encoder": spec, "decoder": dspec})
        for a, b in itertools.combinations(streams, 2):
            counts["encoder_pairs"] += 1
            counts["encoder_pairs_with_different_bytes"] += streams[a] != streams[b]
        if (i + 1) % 10 == 0:
            print(f"{i + 1}/{args.n} crops, {counts['latent_mismatches']} mismatches",
                  file=sys.stderr)  # fmt: skip
    seconds = round(time.perf_counter() - t0, 1)
    result = {"backends": args.backends, "n_crops": args.n, "seed": args.seed, **counts,
              "mismatches": mismatches[:20], "seconds": seconds}  # fmt: skip
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if counts["latent_mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
