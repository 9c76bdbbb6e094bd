"""The sender's text path on real scene text: time per image and text-section bytes.

    python benchmarks/text_path.py [--sets icdar2015_mmocr_toy openalpr_eu ...] [--limit N]

For each image: spot (RapidOCR PP-OCRv4, ONNX Runtime CPU), filter (paper §4.1) and
build the text section, timed on the image resized to 1024×768 (the issue's edge figure),
then on the image's own size the payload's bytes against the paper's scheme on the same
words: gzip of one ``x1,y1,...,x4,y4,string`` line per word (integer pixels). Images
with no word kept cost 0 bytes in both. Prints a table and the ratios, measured in one run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from textboost.codec.image import load_image, resize
from textboost.text.filter import TextFilter, select_words
from textboost.text.payload import encode_words
from textboost.text.spotter import RapidOcrSpotter

SCENETEXT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "scenetext"
EVAL_SETS = ("icdar2015_mmocr_toy", "openalpr_eu", "openalpr_br")


def gzip_bytes(words) -> int:
    """The paper's auxiliary stream: gzip of boxes and strings as text lines."""
    if not words:
        return 0
    lines = [",".join(str(round(v)) for v in w.quad.ravel()) + "," + w.text for w in words]
    return len(gzip.compress("\n".join(lines).encode(), mtime=0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=list(EVAL_SETS))
    ap.add_argument("--limit", type=int, default=0, help="images per set (0: all)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    spotter, flt = RapidOcrSpotter(), TextFilter()
    spotter.spot(np.zeros((64, 64, 3), np.uint8))  # load the sessions before timing
    rows = []
    for name in args.sets:
        files = sorted(p for p in (SCENETEXT / name).iterdir() if p.suffix == ".jpg")
        for path in files[: args.limit or None]:
            img = load_image(path)
            small = resize(img, 1024, 768)
            t0 = time.perf_counter()
            words = select_words(spotter.spot(small), 1024, 768, flt)
            encode_words(words, 1024, 768)
            edge_s = time.perf_counter() - t0
            h, w = img.shape[:2]
            kept = select_words(spotter.spot(img), w, h, flt)
            rows.append(
                {
                    "set": name,
                    "image": path.name,
                    "edge_s_1024x768": edge_s,
                    "words": len(kept),
                    "payload_bytes": len(encode_words(kept, w, h)),
                    "gzip_bytes": gzip_bytes(kept),
                }
            )
    print(
        f"{'set':<22} {'images':>6} {'words/img':>9} {'ours B/img':>10} {'gzip B/img':>10} "
        f"{'ratio':>6} {'edge s (median, p90)':>22}"
    )
    groups = {}
    for r in rows:
        groups.setdefault(r["set"], []).append(r)
    groups["all"] = rows
    summary = {}
    for name, rs in groups.items():
        ours = statistics.mean(r["payload_bytes"] for r in rs)
        gz = statistics.mean(r["gzip_bytes"] for r in rs)
        times = sorted(r["edge_s_1024x768"] for r in rs)
        p90 = times[min(len(times) - 1, int(0.9 * len(times)))]
        summary[name] = {
            "images": len(rs),
            "words_per_image": statistics.mean(r["words"] for r in rs),
            "payload_bytes_per_image": ours,
            "gzip_bytes_per_image": gz,
            "ratio": ours / gz if gz else None,
            "edge_s_median": statistics.median(times),
            "edge_s_p90": p90,
        }
        s = summary[name]
        print(
            f"{name:<22} {len(rs):>6} {s['words_per_image']:>9.2f} {ours:>10.1f} {gz:>10.1f} "
            f"{(ours / gz if gz else float('nan')):>6.2f} "
            f"{s['edge_s_median']:>14.3f}, {p90:.3f}"
        )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, ONNX Runtime CPU; "
        f"filter {flt.to_dict()}"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"filter": flt.to_dict(), "summary": summary, "images": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
