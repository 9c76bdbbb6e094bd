"""g_s in tiles against g_s on the whole coded image: peak memory, time, pixel differences.

    OMP_NUM_THREADS=1 python benchmarks/tiled_decode.py [--sizes 1024x768 1920x1080]
        [--tiles 0 64 48 32] [--backend torch] [--onnx-dir DIR] [--json out.json]

A shipped Kodak image with rendered text, resized to each size (at most 2.1 MP: the coded
size of any larger frame), is coded at 0.3 bpp; its latents are decoded once and then put
through g_s whole (tile 0) and in tiles of each ``--tiles`` latent cells a side (with
``textboost.codec.tiled.HALO`` cells of context), each in its own process so that its
peak resident memory (VmHWM, model included) is its own. Per run: g_s wall and CPU
seconds (process time, all threads), peak RSS, and against the whole-image output the
largest float difference and the uint8 pixels that differ (and by how much).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "link_sim" / "data" / "kodak_text" / "kodim03_text.png"

CHILD = r"""
import json, sys, time
import numpy as np
from textboost import Codec
from textboost.codec.tiled import synthesis_tiled
backend, onnx_dir, latents, tile, out = sys.argv[1:6]
codec = Codec.load(backend=backend, onnx_dir=onnx_dir or None)
y = np.load(latents)
tile = int(tile)
t, c = time.perf_counter(), time.process_time()
x = synthesis_tiled(codec.transforms.synthesis, y, tile) if tile else codec.transforms.synthesis(y)
wall, cpu = time.perf_counter() - t, time.process_time() - c
np.save(out, x)
# VmHWM, not ru_maxrss: the latter keeps the parent's resident size across fork + exec
hwm = next(v for v in open("/proc/self/status") if v.startswith("VmHWM")).split()[1]
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_mib": int(hwm) / 1024}))
"""


def u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["1024x768", "1920x1080"])
    ap.add_argument("--tiles", type=int, nargs="+", default=[0, 64, 48, 32],
                    help="latent cells a side (0: the whole image in one call)")  # fmt: skip
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--onnx-dir", default="")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    from textboost import Codec
    from textboost.codec.exact import LATENT_FRAC
    from textboost.codec.image import load_image, resize

    codec = Codec.load()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            w, h = (int(v) for v in size.lower().split("x"))
            img = resize(load_image(IMAGE), w, h)
            data = codec.encode(img, rate=0.3)
            _, y_q = codec.decode_latents(data)
            latents = Path(tmp) / "y.npy"
            np.save(latents, (y_q * 2.0**-LATENT_FRAC).astype(np.float32))
            ref = None
            for tile in [0, *(t for t in args.tiles if t)]:
                out = Path(tmp) / f"x{tile}.npy"
                r = subprocess.run(
                    [sys.executable, "-c", CHILD, args.backend, args.onnx_dir, str(latents),
                     str(tile), str(out)],
                    capture_output=True, text=True, check=True, cwd=ROOT,
                )  # fmt: skip
                res = json.loads(r.stdout.strip().splitlines()[-1])
                x = np.load(out)
                if ref is None:
                    ref = x
                d = np.abs(u8(x).astype(np.int16) - u8(ref))
                res.update(size=size, tile=tile, latents=list(y_q.shape[1:3]),
                           max_float_diff=float(np.abs(x - ref).max()),
                           u8_pixels_differing=int(np.count_nonzero(d)), u8_values=int(d.size),
                           u8_max_diff=int(d.max()), load_average=os.getloadavg())  # fmt: skip
                rows.append(res)
                print(f"{size} ({y_q.shape[2]}x{y_q.shape[1]} latents) tile "
                      f"{tile or 'whole':>5}: g_s {res['wall_s']:.2f} s wall, "
                      f"{res['cpu_s']:.2f} s CPU, peak {res['peak_mib']:.0f} MiB; "
                      f"max float diff {res['max_float_diff']:.2g}, uint8 values differing "
                      f"{res['u8_pixels_differing']} of {d.size} (max {res['u8_max_diff']}); "
                      f"load {res['load_average'][0]:.1f}", flush=True)  # fmt: skip
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, backend {args.backend}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
