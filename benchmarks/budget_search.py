"""The budget search, predicted against full, in one process on the same images.

    OMP_NUM_THREADS=1 python benchmarks/budget_search.py [--set kodak|scenetext]
        [--limit 12] [--bpp 0.03 0.06] [--images A.png ...] [--out FILE.json]

For each image and budget both methods of ``Codec.encode_to_budget`` run back to back
(``method="full"``: rates searched on real bytes, scales compared by decoding them;
``method="predict"``: rates from predicted bytes, the scale from the budget per coded
pixel, no decodes), words off (the spotter is the same for both). Prints per case the
coded scale and bytes of each, the PSNR at full size (codec output, no fusion), the
process CPU time and wall time of each, the g_a and g_s calls and real codings; then
how often the two chose the same scale and the same bytes, the mean and worst PSNR
difference, and the time ratio new/old measured in this run, with the load average.
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
            old = run(codec, img, n, "full")
            new = run(codec, img, n, "predict")
            case = {"image": path.name, "bpp": bpp, "budget": n}
            for name, r in (("full", old), ("predict", new)):
                case[name] = {k: v for k, v in r.items() if k != "data"}
            case["same_scale"] = old["scale"] == new["scale"]
            case["same_bytes"] = old["data"] == new["data"]
            cases.append(case)
            print(
                f"{path.name:28s} {bpp:5.3f} bpp {n:6d} B | full: scale {old['scale']:3d} "
                f"{old['bytes']:6d} B {old['psnr_db']:6.2f} dB {old['cpu_s']:5.2f} s CPU "
                f"g_a {old['g_a']} g_s {old['g_s']} codings {old['codings']:2d} | predict: "
                f"scale {new['scale']:3d} {new['bytes']:6d} B {new['psnr_db']:6.2f} dB "
                f"{new['cpu_s']:5.2f} s CPU g_a {new['g_a']} g_s {new['g_s']} codings "
                f"{new['codings']:2d}",
                flush=True,
            )
    diffs = [c["predict"]["psnr_db"] - c["full"]["psnr_db"] for c in cases]
    summary = {
        "cases": len(cases),
        "same_scale": sum(c["same_scale"] for c in cases),
        "same_bytes": sum(c["same_bytes"] for c in cases),
        "psnr_diff_mean_db": statistics.mean(diffs),
        "psnr_diff_worst_db": min(diffs),
        "psnr_diff_where_scales_differ_db": statistics.mean(
            [d for d, c in zip(diffs, cases, strict=True) if not c["same_scale"]] or [0.0]
        ),
        "cpu_s_full": sum(c["full"]["cpu_s"] for c in cases),
        "cpu_s_predict": sum(c["predict"]["cpu_s"] for c in cases),
        "wall_s_full": sum(c["full"]["wall_s"] for c in cases),
        "wall_s_predict": sum(c["predict"]["wall_s"] for c in cases),
        "codings_full": sum(c["full"]["codings"] for c in cases),
        "codings_predict": sum(c["predict"]["codings"] for c in cases),
        "g_s_full": sum(c["full"]["g_s"] for c in cases),
        "g_s_predict": sum(c["predict"]["g_s"] for c in cases),
        "load_average": [load_start, os.getloadavg()],
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    s = summary
    print(
        f"{s['cases']} cases: same scale {s['same_scale']}, same bytes {s['same_bytes']}; "
        f"PSNR predict − full: mean {s['psnr_diff_mean_db']:+.3f} dB, worst "
        f"{s['psnr_diff_worst_db']:+.3f} dB (mean where the scales differ "
        f"{s['psnr_diff_where_scales_differ_db']:+.3f})"
    )
    print(
        f"CPU s full {s['cpu_s_full']:.1f}, predict {s['cpu_s_predict']:.1f} (ratio "
        f"{s['cpu_s_predict'] / s['cpu_s_full']:.2f}); wall {s['wall_s_full']:.1f} → "
        f"{s['wall_s_predict']:.1f}; codings {s['codings_full']} → {s['codings_predict']}; "
        f"g_s {s['g_s_full']} → {s['g_s_predict']}; load average {load_start[0]:.1f} → "
        f"{os.getloadavg()[0]:.1f}"
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"summary": summary, "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
