"""PP-OCRv4 (rapidocr-onnxruntime) against PP-OCRv6 small (rapidocr 3.x) on the originals.

    python benchmarks/spotter_compare.py [--sets openalpr_eu openalpr_br openalpr_us
        icdar2015_mmocr_toy] [--engines PP-OCRv4 PP-OCRv6s] [--limit N]
        [--threads 1] [--json out.json]

Per set: plates read exactly (OpenALPR: the detections touching the plate read it, alone
or joined), DET and E2E F1 (ICDAR 2015 protocol of ``textboost.scenetext.match``; plate
sets ignore detections that touch no annotated plate), and the time per image with the
image resized to 1024×768: wall and CPU time (process time) of one ``spot`` call, ONNX
Runtime on ``--threads`` intra-op threads. The engines run on the same images in one
process, alternating per image, so machine load affects them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from textboost.codec.image import load_image, resize
from textboost.scenetext.gt import load_sets
from textboost.scenetext.match import Counts, match_image
from textboost.text.spotter import PpOcrV6Spotter, RapidOcrSpotter

SCENETEXT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "scenetext"
SETS = ("openalpr_eu", "openalpr_br", "openalpr_us", "icdar2015_mmocr_toy")
ENGINES = {
    "PP-OCRv4": lambda threads: RapidOcrSpotter(threads=threads),
    "PP-OCRv6s": lambda threads: PpOcrV6Spotter(threads=threads),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS))
    ap.add_argument("--engines", nargs="+", choices=list(ENGINES), default=list(ENGINES))
    ap.add_argument("--limit", type=int, default=0, help="images per set (0: all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    engines = {e: ENGINES[e](args.threads) for e in args.engines}
    summary: dict = {}
    for name, images in load_sets(SCENETEXT, args.sets, args.limit):
        acc = {
            e: {"det": Counts(0, 0, 0), "e2e": Counts(0, 0, 0), "read": 0, "wall": [], "cpu": []}
            for e in engines
        }
        for gt in images:
            img = load_image(gt.image)
            small = resize(img, 1024, 768)
            plate = gt.kind == "plate"
            for e, spotter in engines.items():
                words = spotter.spot(img)
                m = match_image(gt.words, words, ignore_unannotated=plate)
                a = acc[e]
                a["det"], a["e2e"] = a["det"] + m.det, a["e2e"] + m.e2e
                a["read"] += bool(m.plate_read)
                w0, c0 = time.perf_counter(), time.process_time()
                spotter.spot(small)
                a["wall"].append(time.perf_counter() - w0)
                a["cpu"].append(time.process_time() - c0)
        summary[name] = {
            e: {
                "images": len(images),
                "plates_read": a["read"] if images and images[0].kind == "plate" else None,
                "det_f1": a["det"].f1,
                "e2e_f1": a["e2e"].f1,
                "wall_s_median": statistics.median(a["wall"]),
                "cpu_s_median": statistics.median(a["cpu"]),
            }
            for e, a in acc.items()
        }
        for e, s in summary[name].items():
            read = "" if s["plates_read"] is None else f"{s['plates_read']}/{s['images']}"
            print(
                f"{name:<20} {e:<10} images {s['images']:>4}  plates read {read:>8}  "
                f"DET F1 {s['det_f1']:.3f}  E2E F1 {s['e2e_f1']:.3f}  "
                f"1024x768: wall {s['wall_s_median']:.3f} s, CPU {s['cpu_s_median']:.3f} s",
                flush=True,
            )
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, ONNX Runtime CPU, "
        f"{args.threads} intra-op thread(s); load average {' '.join(load)}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
