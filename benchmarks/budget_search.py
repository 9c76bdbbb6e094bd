"""The budget search, predicted against full, in one process on the same images.

    OMP_NUM_THREADS=1 python benchmarks/budget_search.py [--set kodak|scenetext]
        [--limit 12] [--bpp 0.03 0.06] [--images A.png ...] [--out FILE.json]

For each image and budget the three methods of ``Codec.encode_to_budget`` run back to
back (``method="full"``: rates searched on real bytes, scales compared by decoding them;
``method="predict"``: rates from predicted bytes, the scale from the budget per coded
pixel, no decodes; ``method="check"``: the same, a near tie with the next larger scale
settled by decoding both), words off (the spotter is the same for all). Prints per case
the coded scale and bytes of each, the PSNR at full size (codec output, no fusion), the
process CPU time and wall time of each, the g_a and g_s calls and real codings; then per
cheap method how often it chose the full search's scale and bytes, the mean and worst
PSNR difference, and its time against the full search's in this run, with the load
average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from textboost import Codec
from textboost.bitstream.container import Container
from textboost.codec.image import load_image, psnr_db
from textboost.codec.rate import budget_bytes
from textboost.pipeline.verify import TimedTransforms

ROOT = Path(__file__).resolve().parent.parent
CHEAP = ("predict", "check")  # the methods compared with the full search
TOTALS = ("cpu_s", "wall_s", "codings", "g_s")  # summed over the cases per method
SHARED = ROOT.parent / "shared" / "data"
SETS = {
    "kodak": [SHARED / "kodak"],
    "scenetext": [
        SHARED / "scenetext" / d
        for d in ("icdar2015_mmocr_toy", "container_nameplates", "openalpr_eu")
    ],
}


def images(args) -> list[Path]:
    if args.images:
        return [Path(p) for p in args.images]
    found = []
    for folder in SETS[args.set]:
        found += sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg"))
    step = max(len(found) // args.limit, 1)
    return found[::step][: args.limit]


def run(codec: Codec, img, n_bytes: int, method: str) -> dict:
    timed = TimedTransforms(codec.transforms)
    inner, codec.transforms = codec.transforms, timed
    codings = 0
    encode = codec.encode_analysis

    def counted(*a, **k):
        nonlocal codings
        codings += 1
        return encode(*a, **k)

    codec.encode_analysis = counted
    try:
        t, c = time.perf_counter(), time.process_time()
        data = codec.encode_to_budget(img, max_bytes=n_bytes, method=method)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
    finally:
        codec.transforms = inner
        del codec.encode_analysis
    hd = Container.parse(data).header
    return {
        "bytes": len(data),
        "scale": hd.scale,
        "rate": hd.rate,
        "psnr_db": float(psnr_db(codec.decode(data), img)),
        "cpu_s": cpu,
        "wall_s": wall,
        "g_a": timed.calls["analysis"],
        "g_s": timed.calls["synthesis"],
        "codings": codings,
        "data": data,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--set", choices=sorted(SETS), default="kodak")
    p.add_argument("--limit", type=int, default=12)
    p.add_argument("--images", nargs="+")
    p.add_argument("--bpp", type=float, nargs="+", default=[0.03, 0.06])
    p.add_argument("--out", help="JSON results file")
    args = p.parse_args()
    codec = Codec.load()
    load_start = os.getloadavg()
    cases = []
    for path in images(args):
        img = load_image(path)
        h, w = img.shape[:2]
        for bpp in args.bpp:
            n = budget_bytes(bpp, w, h)
            runs = {m: run(codec, img, n, m) for m in ("full", *CHEAP)}
            case = {"image": path.name, "bpp": bpp, "budget": n}
            for name, r in runs.items():
                case[name] = {k: v for k, v in r.items() if k != "data"}
                r = case[name]
                if name in CHEAP:
                    r["same_scale"] = r["scale"] == case["full"]["scale"]
                    r["same_bytes"] = runs[name]["data"] == runs["full"]["data"]
            cases.append(case)
            print(
                f"{path.name:24s} {bpp:5.3f} bpp {n:6d} B | "
                + " | ".join(
                    f"{m}: scale {r['scale']:3d} {r['bytes']:6d} B {r['psnr_db']:6.2f} dB "
                    f"{r['cpu_s']:5.2f} s CPU g_a {r['g_a']} g_s {r['g_s']} codings "
                    f"{r['codings']:2d}"
                    for m, r in ((m, case[m]) for m in runs)
                ),
                flush=True,
            )
    summary = {
        "cases": len(cases),
        "load_average": [load_start, os.getloadavg()],
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "full": {k: sum(c["full"][k] for c in cases) for k in TOTALS},
    }
    full = summary["full"]
    for m in CHEAP:
        diffs = [c[m]["psnr_db"] - c["full"]["psnr_db"] for c in cases]
        s = {k: sum(c[m][k] for c in cases) for k in TOTALS}
        s |= {
            "same_scale": sum(c[m]["same_scale"] for c in cases),
            "same_bytes": sum(c[m]["same_bytes"] for c in cases),
            "psnr_diff_mean_db": statistics.mean(diffs),
            "psnr_diff_worst_db": min(diffs),
            "psnr_diff_where_scales_differ_db": statistics.mean(
                [d for d, c in zip(diffs, cases, strict=True) if not c[m]["same_scale"]]
                or [0.0]
            ),
        }
        summary[m] = s
        print(
            f"{m}: {len(cases)} cases, same scale as full {s['same_scale']}, same bytes "
            f"{s['same_bytes']}; PSNR − full: mean {s['psnr_diff_mean_db']:+.3f} dB, worst "
            f"{s['psnr_diff_worst_db']:+.3f} dB (mean where the scales differ "
            f"{s['psnr_diff_where_scales_differ_db']:+.3f}); CPU s {s['cpu_s']:.1f} against "
            f"{full['cpu_s']:.1f} (ratio {s['cpu_s'] / full['cpu_s']:.2f}); codings "
            f"{s['codings']} against {full['codings']}; g_s {s['g_s']} against {full['g_s']}"
        )
    print(f"load average {load_start[0]:.1f} → {os.getloadavg()[0]:.1f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"summary": summary, "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
