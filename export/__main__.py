"""Command line: export the codec's transforms for deployment.

    python -m export onnx [--out DIR] [--model FILE] [--opset N] [--images IMG ...] [--json]
    python -m export trt [--onnx DIR] [--model FILE] [--precision fp16|fp32|both] [--json]
    python -m export bundle --target jetson --out DIR [--model FILE] [--onnx DIR]
    python -m export verify [--model FILE] [--onnx-dir DIR] [--backend B] [--device D] [--json]

``onnx`` writes sender.onnx (g_a + h_a), receiver.onnx (g_s) and, when the fusion weights
exist beside the model, fusion.onnx, with dynamic height and width, and
textboost-onnx.json (model id, opset, checksums, parity against torch on real images).
Without --out the graphs go to the cache folder of the model id, where
``Codec.load(backend="onnxruntime")`` looks by default.

``trt`` builds TensorRT engines from those graphs on this machine (engines are never
shipped: they belong to one GPU and one TensorRT version), cached by GPU, TensorRT
version, precision and shape profile. Without tensorrt it says so and exits 2.

``bundle`` writes what a Jetson-class sender needs (export/bundle.py says what).
``verify`` loads the codec on a backend, encodes a shipped image to a byte budget, decodes
it, and prints each stage's time and the PSNR: the first thing to run on a device.

Errors exit with code 2 and one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from textboost.cli import add_version, prog_name


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog_name("export", "textboost-export"),
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(p)
    sub = p.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("onnx", help="torch → ONNX graphs with a parity check")
    o.add_argument("--out", help="output folder (default: the model id's cache folder)")
    o.add_argument("--model", help="model file (default: the shipped model)")
    o.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    o.add_argument("--images", nargs="+", help="parity images (default: shipped Kodak images)")
    o.add_argument("--no-fusion", action="store_true", help="leave the fusion block out")
    o.add_argument(
        "--fp16", action="store_true", help="also float16 graphs (TensorRT >= 11 fp16 engines)"
    )
    o.add_argument("--tolerance", type=float, default=1e-2, help="max abs error allowed per output")
    o.add_argument("--json", action="store_true", help="print the metadata as JSON")
    t = sub.add_parser("trt", help="ONNX graphs → TensorRT engines (on the target device)")
    t.add_argument("--onnx", help="folder of `export onnx` (default: the model id's cache)")
    t.add_argument("--model", help="model file (default: the shipped model)")
    t.add_argument("--precision", choices=["fp16", "fp32", "both"], default="both")
    t.add_argument("--max-size", default="1088x1920", help="largest image HxW of the profile")
    t.add_argument("--opt-size", default="768x1024", help="image HxW the engines tune for")
    t.add_argument("--device", type=int, default=0, help="CUDA device index")
    t.add_argument("--force", action="store_true", help="rebuild even if cached")
    t.add_argument("--json", action="store_true")
    b = sub.add_parser("bundle", help="deploy bundle for an edge device")
    b.add_argument("--target", choices=["jetson"], default="jetson")
    b.add_argument("--out", required=True, help="new folder for the bundle")
    b.add_argument("--model", help="model file (default: the shipped model)")
    b.add_argument("--onnx", help="an existing `export onnx` folder (default: export anew)")
    b.add_argument("--constriction-src", help="constriction source tree to ship (aarch64)")
    v = sub.add_parser("verify", help="encode + decode a shipped image: stage times, PSNR")
    v.add_argument("--model", help="model file (default: the shipped model)")
    v.add_argument("--onnx-dir", help="folder of `export onnx` (default: the cache)")
    v.add_argument("--backend", choices=["onnxruntime", "tensorrt", "torch"], default="onnxruntime")
    v.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    v.add_argument("--image", help="image to code (default: a shipped Kodak image with text)")
    v.add_argument("--max-bytes", type=int, default=2000)
    v.add_argument("--no-text", action="store_true", help="skip the OCR spotter")
    v.add_argument("--min-psnr", type=float, default=20.0, help="fail below this PSNR (dB)")
    v.add_argument("--json", action="store_true")
    return p


def _hw(s: str) -> tuple[int, int]:
    h, _, w = s.lower().partition("x")
    return int(h), int(w)


def _onnx(args) -> int:
    from export.onnx import DEFAULT_OPSET, export_onnx

    meta = export_onnx(
        args.model,
        args.out,
        opset=args.opset or DEFAULT_OPSET,
        images=[Path(i) for i in args.images] if args.images else None,
        fusion=False if args.no_fusion else None,
        tolerance=args.tolerance,
        fp16=args.fp16,
    )
    if args.json:
        print(json.dumps(meta, indent=2))
        return 0
    print(f"model {meta['model_id']}  opset {meta['opset']}  → {meta['dir']}")
    for role, g in meta["graphs"].items():
        print(f"  {role:9s} {g['file']}")
    par = meta["parity"]
    n, names = len(par["sizes"]), ", ".join(par["images"])
    print(f"parity vs torch, {n} inputs from {names} (2 sizes each):")
    for name, s in par["outputs"].items():
        print(f"  {name:6s} max abs {s['max_abs']:.3g}  mean abs {s['mean_abs']:.3g}")
    if meta["parity_fp16"]:
        print("float16 graphs (ONNX Runtime CPU):")
        for name, s in meta["parity_fp16"]["outputs"].items():
            print(f"  {name:6s} max abs {s['max_abs']:.3g}  mean abs {s['mean_abs']:.3g}")
    return 0


def _trt(args) -> int:
    from textboost.codec.trt_runtime import TensorRTUnavailable, require_tensorrt

    try:
        require_tensorrt()
    except TensorRTUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from export.trt import build_engines

    built = build_engines(
        args.model,
        args.onnx,
        precisions=["fp16", "fp32"] if args.precision == "both" else [args.precision],
        max_hw=_hw(args.max_size),
        opt_hw=_hw(args.opt_size),
        device_index=args.device,
        force=args.force,
    )
    if args.json:
        print(json.dumps(built, indent=2))
    else:
        for e in built["engines"]:
            state = "cached" if e["cached"] else f"built in {e['build_seconds']:.1f} s"
            print(f"  {e['role']:9s} {e['precision']}  {e['path']}  ({state})")
    return 0


def _bundle(args) -> int:
    from export.bundle import build_bundle

    b = build_bundle(
        args.out,
        target=args.target,
        model_path=args.model,
        onnx_dir=args.onnx,
        constriction_src=args.constriction_src,
    )
    print(f"{b['dir']}: {args.target} bundle, model {b['model_id']}, {len(b['files'])} files")
    return 0


def _verify(args) -> int:
    from export.verify import format_verify, verify
    from textboost.codec.exported import BackendUnavailable

    try:
        r = verify(
            args.model,
            backend=args.backend,
            device=args.device,
            onnx_dir=args.onnx_dir,
            image=args.image,
            max_bytes=args.max_bytes,
            text=not args.no_text,
            min_psnr=args.min_psnr,
        )
    except BackendUnavailable as e:
        raise RuntimeError(str(e)) from e
    r.pop("_decoded")
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print("\n".join(format_verify(r)))
    return 0 if r["ok"] else 1


COMMANDS = {"onnx": _onnx, "trt": _trt, "bundle": _bundle, "verify": _verify}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.cmd](args)
    except (OSError, ValueError, AssertionError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
