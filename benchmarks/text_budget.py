"""Whole-image PSNR at equal total bytes with words carried: where the loss comes from.

    OMP_NUM_THREADS=1 python benchmarks/text_budget.py [--bpp 0.02 0.03 0.06]
        [--limit N] [--sets icdar,br,eu,kodak_signs] [--out FILE.json]

For each image of the text evaluation sets and each budget, in one process, the codec's
own output (no fusion: the word block changes only the pixels around carried words) of

- ``codec``: ``encode_to_budget(text=False)`` (the predicted search, the default);
- ``codec_full``: the same with ``method="full"`` (scales compared by decoding);
- ``text``: words carried (the default: styled words, predicted search);
- ``text_full``: words carried, ``method="full"``;
- ``text_plain``: words carried without their style bytes (``TextFilter(style=False)``,
  the version-0 rendering at the receiver), predicted search.

Each row has the bytes, the coded scale, the PSNR over the image, and the text section's
bytes split into what the words cost without style and what the style adds. The summary
separates the two parts of ``text − codec``: the scale choice (``text − text_full`` against
``codec − codec_full``) and the bytes the words take from the pixels. The spotter runs
once per image (its words are cached), so every variant carries the same words.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.text_matrix import SETS, set_images  # noqa: E402
from textboost import Codec  # noqa: E402
from textboost.bitstream.container import Container  # noqa: E402
from textboost.codec.image import load_image, psnr_db  # noqa: E402
from textboost.codec.rate import budget_bytes  # noqa: E402
from textboost.text.filter import TextFilter  # noqa: E402
from textboost.text.payload import encode_words  # noqa: E402

VARIANTS = ("codec", "codec_full", "text", "text_full", "text_plain")


class CachedSpotter:
    """The default spotter, reading each image once (every variant carries the same words)."""

    def __init__(self) -> None:
        from textboost.text.spotter import default_spotter

        self.inner = default_spotter()
        self.key: bytes | None = None
        self.words: list = []

    def spot(self, img: np.ndarray) -> list:
        key = np.ascontiguousarray(img).tobytes()[:: 997] + bytes(str(img.shape), "ascii")
        if key != self.key:
            self.key, self.words = key, self.inner.spot(img)
        return list(self.words)


def case(codec: Codec, plain: Codec, img: np.ndarray, budget: int) -> dict:
    out: dict = {}
    for v in VARIANTS:
        c = plain if v == "text_plain" else codec
        method = "full" if v.endswith("_full") else "predict"
        t = time.process_time()
        data = c.encode_to_budget(img, max_bytes=budget, text=v != "codec" and v != "codec_full",
                                  method=method)  # fmt: skip
        cpu = time.process_time() - t
        box = Container.parse(data)
        row = {
            "bytes": len(data),
            "scale": box.header.scale,
            "rate": round(box.header.rate / 65535, 4),
            "text_bytes": len(box.text),
            "psnr_db": float(psnr_db(img, c.decode(data, fusion=False))),
            "cpu_s": round(cpu, 3),
        }
        if box.text:
            h, w = img.shape[:2]
            words = c.words(data)
            row["n_words"] = len(words)
            row["unstyled_bytes"] = len(encode_words([replace(x, style=None) for x in words], w, h))
        out[v] = row
    return out


def summarise(cases: list[dict]) -> dict:
    def mean(f) -> float | None:
        vals = [f(c["variants"]) for c in cases]
        return round(statistics.fmean(vals), 4) if vals else None

    d = {
        "n": len(cases),
        "text_minus_codec_db": mean(lambda v: v["text"]["psnr_db"] - v["codec"]["psnr_db"]),
        "text_full_minus_codec_full_db": mean(
            lambda v: v["text_full"]["psnr_db"] - v["codec_full"]["psnr_db"]
        ),
        "text_minus_text_full_db": mean(lambda v: v["text"]["psnr_db"] - v["text_full"]["psnr_db"]),
        "codec_minus_codec_full_db": mean(
            lambda v: v["codec"]["psnr_db"] - v["codec_full"]["psnr_db"]
        ),
        "text_plain_minus_codec_db": mean(
            lambda v: v["text_plain"]["psnr_db"] - v["codec"]["psnr_db"]
        ),
        "text_minus_text_plain_db": mean(
            lambda v: v["text"]["psnr_db"] - v["text_plain"]["psnr_db"]
        ),
        "text_bytes": mean(lambda v: v["text"]["text_bytes"]),
        "style_bytes": mean(
            lambda v: v["text"]["text_bytes"] - v["text"].get("unstyled_bytes", 0)
        ),
        "words": mean(lambda v: v["text"].get("n_words", 0)),
        "same_scale_text": sum(
            c["variants"]["text"]["scale"] == c["variants"]["text_full"]["scale"] for c in cases
        ),
        "same_scale_codec": sum(
            c["variants"]["codec"]["scale"] == c["variants"]["codec_full"]["scale"] for c in cases
        ),
        "text_scale_differs_from_codec": sum(
            c["variants"]["text"]["scale"] != c["variants"]["codec"]["scale"] for c in cases
        ),
    }
    return d


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bpp", type=float, nargs="+", default=[0.02, 0.03, 0.06])
    p.add_argument("--sets", default="icdar,br,kodak_signs,eu")
    p.add_argument("--limit", type=int, default=None, help="images a set (evenly spaced)")
    p.add_argument("--work", type=Path, default=ROOT / "build" / "text_matrix")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    names = [s.strip() for s in args.sets.split(",") if s.strip()]
    for n in names:
        if n not in SETS:
            p.error(f"--sets: unknown set {n!r}: expected some of {', '.join(SETS)}")
    spotter = CachedSpotter()
    codec = Codec.load(spotter=spotter)
    plain = Codec.load(spotter=spotter, text_filter=TextFilter(style=False))
    cases: list[dict] = []
    t0 = time.time()
    for name in names:
        paths = [g.image for g in set_images(name, args.work)]
        if args.limit:
            step = max(len(paths) // args.limit, 1)
            paths = paths[::step][: args.limit]
        for path in paths:
            img = load_image(path)
            h, w = img.shape[:2]
            for bpp in args.bpp:
                b = budget_bytes(bpp, w, h)
                v = case(codec, plain, img, b)
                cases.append({"set": name, "file": path.name, "size": [w, h], "bpp": bpp,
                              "budget": b, "variants": v})  # fmt: skip
                t, f = v["text"], v["text_full"]
                print(
                    f"{name}/{path.name} {bpp}: codec {v['codec']['psnr_db']:.2f} "
                    f"(1/{v['codec']['scale'] / 8:.3g}) text {t['psnr_db']:.2f} (1/"
                    f"{t['scale'] / 8:.3g}, {t['text_bytes']} B, style "
                    f"{t['text_bytes'] - t.get('unstyled_bytes', 0)}) full {f['psnr_db']:.2f} "
                    f"(1/{f['scale'] / 8:.3g}) codec_full {v['codec_full']['psnr_db']:.2f} "
                    f"plain {v['text_plain']['psnr_db']:.2f}",
                    flush=True,
                )
    summary = {
        "all": summarise(cases),
        **{
            f"{n}@{b}": summarise([c for c in cases if c["set"] == n and c["bpp"] == b])
            for n in names
            for b in args.bpp
        },
        **{f"@{b}": summarise([c for c in cases if c["bpp"] == b]) for b in args.bpp},
    }
    summary = {k: v for k, v in summary.items() if v["n"]}
    run = {"wall_s": round(time.time() - t0, 1), "loadavg": os.getloadavg(),
           "omp_threads": os.environ.get("OMP_NUM_THREADS")}  # fmt: skip
    print(json.dumps({"run": run, "summary": summary}, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"run": run, "summary": summary, "cases": cases},
                                       indent=1) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
