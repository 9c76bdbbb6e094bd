"""Smaller analysis transforms on ONNX Runtime CPU: graph optimisation levels and int8.

    OMP_NUM_THREADS=1 python benchmarks/ort_variants.py --onnx-dir DIR [--limit 6]
        [--bpp 0.06] [--repeats 5]

Variants of the sender graph (g_a + h_a) from ``python -m export onnx``: ONNX Runtime's
graph optimisation levels (disabled, basic, extended, all) on the float graph, and the
graph with int8 weights (``onnxruntime.quantization.quantize_dynamic``, activations
quantised per call). Only the analysis changes: the entropy parameters stay exact, so
every variant's streams decode at the ground with the usual receiver; what a variant can
cost is quality at equal bytes. Per variant: g_a + h_a wall and process CPU ms (median
of ``--repeats`` on kodim01 at 768×512), and over the first ``--limit`` Kodak images the
budget search's stream at ``--bpp`` (predicted search, text off): mean bytes and PSNR,
and the PSNR difference against the float graph at full optimisation, each stream
decoded by the float receiver. The issue's bar for keeping a variant: ≤ 0.05 dB lower.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from textboost.codec.image import load_image, psnr_db
from textboost.codec.rate import budget_bytes
from textboost.pipeline.api import Pipeline

ROOT = Path(__file__).resolve().parent.parent
KODAK = ROOT.parent / "shared" / "data" / "kodak"


def variant_sessions(onnx_dir: Path, tmp: Path) -> dict:
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    sender = onnx_dir / "sender.onnx"
    levels = {
        "float, no optimisation": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "float, basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "float, extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "float, all (default)": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    out = {}
    for name, level in levels.items():
        opts = ort.SessionOptions()
        opts.graph_optimization_level = level
        out[name] = ort.InferenceSession(str(sender), opts, providers=["CPUExecutionProvider"])
    int8 = tmp / "sender.int8.onnx"
    quantize_dynamic(str(sender), str(int8), weight_type=QuantType.QInt8)
    out["int8 weights (dynamic)"] = ort.InferenceSession(
        str(int8), providers=["CPUExecutionProvider"]
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--onnx-dir", required=True, type=Path)
    p.add_argument("--limit", type=int, default=6)
    p.add_argument("--bpp", type=float, default=0.06)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    codec = Pipeline.load(backend="onnxruntime", onnx_dir=args.onnx_dir, fusion=False)
    transforms = codec.codec.transforms
    images = [load_image(KODAK / f"kodim{i:02d}.png") for i in range(1, args.limit + 1)]
    x = np.ascontiguousarray(images[0].transpose(2, 0, 1)[None], np.float32) / 255.0
    with tempfile.TemporaryDirectory() as tmp:
        sessions = variant_sessions(args.onnx_dir, Path(tmp))
        base = None
        print(f"load average {os.getloadavg()[0]:.1f}, OMP_NUM_THREADS="
              f"{os.environ.get('OMP_NUM_THREADS')}")  # fmt: skip
        for name, sess in sessions.items():
            wall, cpu = [], []
            for _ in range(args.repeats + 1):
                t, c = time.perf_counter(), time.process_time()
                sess.run(None, {"x": x})
                wall.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            transforms._sessions["sender"] = sess
            psnrs, sizes = [], []
            for img in images:
                h, w = img.shape[:2]
                data = codec.encode_to_budget(img, max_bytes=budget_bytes(args.bpp, w, h),
                                              text=False)  # fmt: skip
                sizes.append(len(data))
                psnrs.append(float(psnr_db(codec.decode(data, fusion=False), img)))
            mean = statistics.mean(psnrs)
            base = mean if base is None or name.startswith("float, all") else base
            print(f"{name:26s} g_a+h_a {1e3 * statistics.median(wall[1:]):7.1f} ms wall "
                  f"{1e3 * statistics.median(cpu[1:]):7.1f} ms CPU | {args.bpp} bpp: "
                  f"{statistics.mean(sizes):7.1f} B, {mean:.3f} dB", flush=True)  # fmt: skip
        print("(PSNR differences: against the 'float, all' line; the int8 line's drop is "
              "the one the ≤ 0.05 dB bar applies to)")  # fmt: skip


if __name__ == "__main__":
    main()
