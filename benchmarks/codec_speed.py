"""Codec speed by stage on this machine: ms per megapixel and entropy-coding symbols/s.

    python benchmarks/codec_speed.py [--image PATH] [--repeat 5] [--json]

"y coding" is the whole exact parameter path plus range coding of y, i.e. what both
ends must run identically; its symbols/s is the figure the issue's ≥ 10 M goal refers to.
Stages are timed separately in one run (median of --repeat), in wall time and in this
process's CPU time (on a machine shared with other work the CPU time is the steadier
figure: run with OMP_NUM_THREADS=1); the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from textboost import Pipeline
from textboost.codec.exact import interp_gain_q6
from textboost.codec.image import load_image

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_IMAGE = ROOT.parent / "shared" / "data" / "kodak" / "kodim01.png"
CODE = "z + y coding (h_s, SCCTX, range coder)"
DECODE = "decode latents (z, h_s, y)"


def median_ms(fn, repeat: int) -> tuple[float, float, object]:
    """(median wall ms, median process CPU ms, the last result) of ``repeat`` calls."""
    wall, cpu, out = [], [], None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(1e3 * (time.perf_counter() - t))
        cpu.append(1e3 * (time.process_time() - c))
    return statistics.median(wall), statistics.median(cpu), out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--image", default=str(DEFAULT_IMAGE))
    p.add_argument("--rate", type=float, default=0.3)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    pipe = Pipeline.load()
    codec = pipe.codec
    img = load_image(args.image)
    h, w = img.shape[:2]
    mpix = h * w / 1e6
    rate_q = round(args.rate * 65535)
    r = args.repeat
    x = np.ascontiguousarray(np.zeros((1, 3, -(-h // 64) * 64, -(-w // 64) * 64), np.float32))
    x[0, :, :h, :w] = img.transpose(2, 0, 1) / 255.0

    stages: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def stage(name: str, fn):
        stages[name], cpu[name], out = median_ms(fn, r)
        return out

    stage("g_a + h_a (torch)", lambda: codec.transforms.analysis(x))
    an = codec.analyse(img)
    z_hat = codec.quantise_z(an.z, rate_q)

    def hyper():
        with threadpool_limits(1, user_api="blas"):
            return codec.hyper(z_hat, rate_q)

    hyp = stage("h_s exact", hyper)

    def params_only():
        gain = interp_gain_q6(codec.gain_anchors_q6, rate_q)
        starts = np.cumsum([0, *codec.cfg.groups])
        y_q = []
        with threadpool_limits(1, user_api="blas"):
            for k in range(codec.n_groups):
                yk = an.y[..., starts[k] : starts[k + 1]]

                def sym(k, rows, mu, idx, step, yk=yk):
                    return np.floor((yk[rows] - mu / 64) / (step / 2**22) + 0.5).astype(np.int64)

                prev = np.concatenate(y_q, -1) if y_q else None
                y_q.append(codec.params.code_group(k, hyp, prev, gain, sym))

    stage("y exact parameters (SCCTX)", params_only)
    stage(CODE, lambda: codec.code_latents(an, rate_q))
    data = codec.encode_analysis(an, rate_q)
    _, y_q = stage(DECODE, lambda: codec.decode_latents(data))
    stage("g_s (torch)", lambda: codec.transforms.synthesis(y_q / 64.0))
    stage("encode total (rate given, words spotted)", lambda: pipe.encode(img, rate=args.rate))
    stage("decode total", lambda: pipe.decode(data))

    n_sym = int(np.prod(an.y.shape))
    sym_enc, sym_dec = n_sym / (stages[CODE] / 1e3), n_sym / (stages[DECODE] / 1e3)
    cpu_enc, cpu_dec = n_sym / (cpu[CODE] / 1e3), n_sym / (cpu[DECODE] / 1e3)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "backend": "torch CPU (transforms), numpy exact path, constriction range coder",
        "load_average": os.getloadavg(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "image": Path(args.image).name,
        "size": [w, h],
        "bytes": len(data),
        "y_symbols": n_sym,
        "stages_ms": stages,
        "stages_cpu_ms": cpu,
        "stages_ms_per_mpix": {k: v / mpix for k, v in stages.items()},
        "y_symbols_per_s_encode": sym_enc,
        "y_symbols_per_s_decode": sym_dec,
        "y_symbols_per_cpu_s_encode": cpu_enc,
        "y_symbols_per_cpu_s_decode": cpu_dec,
        "goal_symbols_per_s": 10e6,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    load = " ".join(f"{v:.2f}" for v in result["load_average"])
    print(f"{result['image']} {w}x{h} ({mpix:.3f} MPix), {len(data)} bytes, {result['machine']}")
    print(f"load average {load}, OMP_NUM_THREADS={result['omp_num_threads']}")
    print(f"{'stage':<44}{'wall ms':>10}{'CPU ms':>10}{'ms/MPix':>10}")
    for k, v in stages.items():
        print(f"{k:<44}{v:>10.1f}{cpu[k]:>10.1f}{v / mpix:>10.1f}")
    print(
        f"y symbols: {n_sym}; encode {sym_enc / 1e6:.2f} M symbols/s wall, "
        f"{cpu_enc / 1e6:.2f} M per CPU second; decode {sym_dec / 1e6:.2f} M wall, "
        f"{cpu_dec / 1e6:.2f} M per CPU second (goal 10 M: ratio {cpu_enc / 10e6:.2f})"
    )


if __name__ == "__main__":
    main()
