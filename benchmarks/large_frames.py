"""Camera-sized frames: time and peak memory of a budget encode and its decode.

    python benchmarks/large_frames.py [--mp 12 24] [--bpp 0.03] [--max-bytes 1500] [--text]
        [--no-decode] [--no-fusion]

Each frame is a shipped Kodak photo upscaled (Lanczos) to the megapixels asked and saved
as a JPEG, as a camera writes it; each encode and decode runs in its own process so its
peak resident memory (ru_maxrss) is its own. Prints one row per frame and budget: wall
seconds, and the process's CPU seconds (all threads; on a machine shared with other jobs
the CPU figure with OMP_NUM_THREADS=1 is the steadier one to compare code by).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "link_sim" / "data" / "kodak_text" / "kodim23_text.png"

CHILD = r"""
import json, resource, sys, time
from textboost import Pipeline
from textboost.bitstream.container import Container
t0 = time.perf_counter()
codec = Pipeline.load()
t1, c1 = time.perf_counter(), time.process_time()
mode, src, dst, budget, text = sys.argv[1:6]
if mode == "encode":
    data = codec.encode_to_budget(src, max_bytes=int(budget), text=text == "1")
    open(dst, "wb").write(data)
    hd = Container.parse(data).header
    extra = {"bytes": len(data), "coded": list(hd.coded_size)}
else:  # the fifth argument: "1" decodes through the fusion block (if shipped), "0" not
    img = codec.decode(open(src, "rb").read(), fusion=None if text == "1" else False)
    extra = {"shape": list(img.shape)}
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"load_s": t1 - t0, "work_s": t2 - t1, "cpu_s": c2 - c1,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **extra}))
"""


def run(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mp", type=float, nargs="+", default=[12.0, 24.0])
    ap.add_argument("--bpp", type=float, default=0.03, help="budget as bpp of the frame")
    ap.add_argument("--max-bytes", type=int, default=1500, help="a second, fixed budget")
    ap.add_argument("--text", action="store_true", help="spot and carry words too")
    ap.add_argument("--no-decode", action="store_true", help="time the encodes only")
    ap.add_argument("--no-fusion", action="store_true", help="decode without the fusion block")
    args = ap.parse_args()
    rows = []
    fusion = "0" if args.no_fusion else "1"
    with tempfile.TemporaryDirectory() as tmp:
        for mp in args.mp:
            src = Image.open(PHOTO).convert("RGB")
            w = round((mp * 1e6 * src.width / src.height) ** 0.5)
            h = round(w * src.height / src.width)
            frame = Path(tmp) / f"frame_{mp:g}mp.jpg"
            src.resize((w, h), Image.LANCZOS).save(frame, quality=92)
            for budget in (int(args.bpp * w * h / 8), args.max_bytes):
                tbx = Path(tmp) / "f.tbx"
                t = time.perf_counter()
                enc = run("encode", str(frame), str(tbx), str(budget), "1" if args.text else "0")
                dec = None if args.no_decode else run(
                    "decode", str(tbx), str(Path(tmp) / "f.png"), "0", fusion
                )
                rows.append(
                    {
                        "mp": w * h / 1e6,
                        "size": f"{w}x{h}",
                        "budget": budget,
                        "encode": enc,
                        "decode": dec,
                        "wall_s": time.perf_counter() - t,
                    }
                )
                r = rows[-1]
                decoded = "" if dec is None else (
                    f" | decode {dec['work_s']:5.1f} s (CPU {dec['cpu_s']:.1f} s), "
                    f"peak {dec['peak_mb']:5.0f} MB"
                )  # fmt: skip
                print(
                    f"{r['size']:>11} {r['mp']:5.1f} MP  budget {budget:>6} B: "
                    f"encode {enc['work_s']:5.1f} s (CPU {enc['cpu_s']:.1f} s; "
                    f"+{enc['load_s']:.1f} s load), peak "
                    f"{enc['peak_mb']:5.0f} MB, coded {enc['coded'][0]}x{enc['coded'][1]}, "
                    f"{enc['bytes']} B{decoded}",
                    flush=True,
                )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch CPU transforms; "
        f"text {'on' if args.text else 'off'}; fusion {'off' if args.no_fusion else 'on'}; "
        f"load average {os.getloadavg()[0]:.1f}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )


if __name__ == "__main__":
    main()
