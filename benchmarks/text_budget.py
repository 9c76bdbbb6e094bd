"""Whole-image PSNR at equal total bytes with words carried: where the loss comes from.

    OMP_NUM_THREADS=1 python benchmarks/text_budget.py [--bpp 0.02 0.03 0.06]
        [--limit N] [--sets icdar,br,kodak_signs,eu] [--out FILE.json]

For each image of the text evaluation sets and each budget, in one process, the codec's
own output (no fusion: the word block changes only the pixels around carried words) of

- ``codec``: ``encode_to_budget(text=False)`` (the predicted search, the default);
- ``text``: words carried (the default: styled words, predicted search);
- ``text_plain``: words carried without their style bytes (``TextFilter(style=False)``,
  the version-0 rendering at the receiver), predicted search;

and where the words' bytes move the predicted search's scale (``chosen_scale`` of the
budget less the words names another scale than of the whole budget: a *flip*), also

- ``text_full``: words carried, ``method="full"`` (scales compared by decoding);
- ``text_scale0``: words carried, the predicted search with the scale chosen for the
  whole budget (as the codec alone's), everything else as the default.

Each row has the bytes, the coded scale, the PSNR over the image, and the text section's
bytes split into what the words cost without style and what the style adds. The summary
gives ``text − codec`` over all cases and, over the flips, what the scale choice costs.
The spotter runs once per image (its words are cached), so every variant carries the
same words. The Kodak sign set is the one ``benchmarks/text_matrix.py`` draws.
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

import textboost.codec.budget as budget_mod  # noqa: E402
from benchmarks.text_matrix import SETS, set_images  # noqa: E402
from textboost import Pipeline  # noqa: E402
from textboost.bitstream.container import Container  # noqa: E402
from textboost.codec.budget import chosen_scale, fit_budget  # noqa: E402
from textboost.codec.image import load_image, psnr_db  # noqa: E402
from textboost.codec.rate import budget_bytes  # noqa: E402
from textboost.text.filter import TextFilter  # noqa: E402
from textboost.text.payload import encode_words  # noqa: E402

ALWAYS = ("codec", "text", "text_plain")
ON_FLIP = ("text_full", "text_scale0")


class CachedSpotter:
    """The default spotter, reading each image once (every variant carries the same words)."""

    def __init__(self) -> None:
        from textboost.text.spotter import default_spotter

        self.inner = default_spotter()
        self.key: bytes | None = None
        self.words: list = []

    def spot(self, img: np.ndarray) -> list:
        key = np.ascontiguousarray(img).tobytes()[::997] + bytes(str(img.shape), "ascii")
        if key != self.key:
            self.key, self.words = key, self.inner.spot(img)
        return list(self.words)


def _encode(c: Pipeline, img: np.ndarray, budget: int, v: str) -> bytes:
    if v != "text_scale0":
        method = "full" if v == "text_full" else "predict"
        return c.encode_to_budget(img, max_bytes=budget, text=v != "codec", method=method)
    h, w = img.shape[:2]
    whole = chosen_scale(w, h, budget)
    keep = budget_mod.chosen_scale
    budget_mod.chosen_scale = lambda *_: whole  # the pick inside fit_budget: the whole budget
    try:
        return fit_budget(c.codec, c.analyse(img, scale=whole, text=True), budget)
    finally:
        budget_mod.chosen_scale = keep


def case(codec: Pipeline, plain: Pipeline, img: np.ndarray, budget: int) -> tuple[dict, bool]:
    out: dict = {}
    h, w = img.shape[:2]
    variants = list(ALWAYS)
    flip = False
    for v in variants:
        c = plain if v == "text_plain" else codec
        t = time.process_time()
        data = _encode(c, img, budget, v)
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
            words = c.words(data)
            row["n_words"] = len(words)
            row["unstyled_bytes"] = len(encode_words([replace(x, style=None) for x in words], w, h))
        out[v] = row
        if v == "text_plain":
            text = out["text"]["text_bytes"]
            flip = chosen_scale(w, h, budget - text) != chosen_scale(w, h, budget)
            if flip:
                variants += ON_FLIP
    return out, flip


def summarise(cases: list[dict]) -> dict:
    def mean(f, among: list[dict]) -> float | None:
        vals = [f(c["variants"]) for c in among]
        return round(statistics.fmean(vals), 4) if vals else None

    def diff(a: str, b: str, among: list[dict]) -> float | None:
        return mean(lambda v: v[a]["psnr_db"] - v[b]["psnr_db"], among)

    flips = [c for c in cases if c["flip"]]
    return {
        "n": len(cases),
        "text_minus_codec_db": diff("text", "codec", cases),
        "text_plain_minus_codec_db": diff("text_plain", "codec", cases),
        "text_minus_text_plain_db": diff("text", "text_plain", cases),
        "text_bytes": mean(lambda v: v["text"]["text_bytes"], cases),
        "style_bytes": mean(
            lambda v: v["text"]["text_bytes"] - v["text"].get("unstyled_bytes", 0), cases
        ),
        "words": mean(lambda v: v["text"].get("n_words", 0), cases),
        "text_share_of_file": mean(lambda v: v["text"]["text_bytes"] / v["text"]["bytes"], cases),
        "same_scale_text_codec": sum(
            c["variants"]["text"]["scale"] == c["variants"]["codec"]["scale"] for c in cases
        ),
        "no_flip_text_minus_codec_db": diff("text", "codec", [c for c in cases if not c["flip"]]),
        "flips": len(flips),
        "flip_text_minus_codec_db": diff("text", "codec", flips),
        "flip_text_minus_text_full_db": diff("text", "text_full", flips),
        "flip_text_scale0_minus_text_db": diff("text_scale0", "text", flips),
        "flip_text_scale0_minus_codec_db": diff("text_scale0", "codec", flips),
        "flip_full_on_whole_budget_scale": sum(
            c["variants"]["text_full"]["scale"] == c["variants"]["text_scale0"]["scale"]
            for c in flips
        ),
    }


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
    codec = Pipeline.load(spotter=spotter)
    plain = Pipeline.load(spotter=spotter, text_filter=TextFilter(style=False))
    cases: list[dict] = []
    t0, c0 = time.time(), time.process_time()

    def document() -> dict:
        groups = {"all": cases}
        for b in args.bpp:
            groups[f"@{b:g}"] = [c for c in cases if c["bpp"] == b]
        for n in names:
            groups[n] = [c for c in cases if c["set"] == n]
        summary = {k: summarise(v) for k, v in groups.items() if v}
        run = {"wall_s": round(time.time() - t0, 1), "cpu_s": round(time.process_time() - c0, 1),
               "loadavg": os.getloadavg(), "omp_threads": os.environ.get("OMP_NUM_THREADS"),
               "sets": names, "limit": args.limit, "bpp": args.bpp}  # fmt: skip
        return {"run": run, "summary": summary, "cases": cases}

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
                v, flip = case(codec, plain, img, b)
                cases.append({"set": name, "file": path.name, "size": [w, h], "bpp": bpp,
                              "budget": b, "flip": flip, "variants": v})  # fmt: skip
                print(f"{name}/{path.name} {bpp}{' flip' if flip else ''}: " + ", ".join(
                    f"{k} {r['psnr_db']:.2f} dB 1/{r['scale'] / 8:g} {r['bytes']} B"
                    f" ({r['text_bytes']} text)" for k, r in v.items()), flush=True)  # fmt: skip
            if args.out:
                args.out.write_text(json.dumps(document(), indent=1) + "\n")
    doc = document()
    print(json.dumps({"run": doc["run"], "summary": doc["summary"]}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
