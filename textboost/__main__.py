"""Command line: encode, decode and inspect `.tbx` files.

    python -m textboost encode IN.png OUT.tbx (--rate R | --bpp B | --max-bytes N) [--no-text]
    python -m textboost decode IN.tbx OUT.png [--groups K] [--no-fusion]
    python -m textboost info IN.tbx [--json]     # sections, and the words carried

    --backend torch|onnxruntime|tensorrt (before the command) runs the transforms on that
    backend; onnxruntime and tensorrt use the graphs of `python -m export onnx` (--onnx-dir,
    default: the model id's cache folder) and never import torch.

By default the sender spots small text and carries it in the text section (inside the
budget), and the receiver fuses it with the decoded image; --no-text and --no-fusion
give the codec alone.

Errors exit with code 2 and one line naming the file and the problem.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from textboost.cli import add_capture_arguments, add_version, meta_from_args, prog_name
from textboost.codec.container import BitstreamError, Container, section_name
from textboost.codec.exported import BackendUnavailable
from textboost.text.payload import decode_words


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog_name("textboost", "textboost"),
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(p)
    p.add_argument("--model", help="model file (default: the shipped model)")
    p.add_argument(
        "--backend", choices=["torch", "onnxruntime", "tensorrt"], default="torch",
        help="where the transforms run (default torch)",
    )  # fmt: skip
    p.add_argument("--onnx-dir", help="folder of `python -m export onnx` (exported backends)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("encode", help="image → .tbx")
    e.add_argument("input")
    e.add_argument("output")
    g = e.add_mutually_exclusive_group(required=True)
    g.add_argument("--rate", type=float, help="rate parameter in [0, 1] (0 = lowest bitrate)")
    g.add_argument("--bpp", type=float, help="bits-per-pixel budget (whole file)")
    g.add_argument("--max-bytes", type=int, help="byte budget (whole file)")
    e.add_argument("--no-text", action="store_true", help="carry no spotted words")
    add_capture_arguments(e)
    d = sub.add_parser("decode", help=".tbx → PNG")
    d.add_argument("input")
    d.add_argument("output")
    d.add_argument("--groups", type=int, help="use only the first K y groups")
    d.add_argument(
        "--no-fusion", action="store_true", help="the codec's own output, without the fusion block"
    )
    i = sub.add_parser("info", help="describe a .tbx file")
    i.add_argument("input")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read: {e.strerror}") from e


def info(data: bytes) -> dict:
    c = Container.parse(data)
    h = c.header
    sections = [{"name": section_name(i), "bytes": len(s)} for i, s in enumerate(c.sections)]
    return {
        "format_version": data[2],
        "model_id": h.model_id.hex(),
        "width": h.width,
        "height": h.height,
        "coded_width": h.coded_size[0],
        "coded_height": h.coded_size[1],
        "scale": h.scale / 8,
        "rate": h.rate / 65535,
        "groups_present": len(c.groups),
        "groups_total": h.n_groups,
        "bytes": len(data),
        "bpp": 8 * len(data) / (h.width * h.height),
        "sections": sections,
        "words": [
            {"text": w.text, "quad": [[round(v, 1) for v in p] for p in w.quad.tolist()]}
            for w in decode_words(c.text, h.width, h.height)
        ],
        "capture": h.meta.to_json() if h.meta is not None else None,
    }


def _backend(args) -> dict:
    return {"backend": args.backend, "device": args.device, "onnx_dir": args.onnx_dir}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    current = args.input
    try:
        if args.cmd == "info":
            d = info(_read(args.input))
            if args.json:
                print(json.dumps(d, indent=2))
            else:
                coded = (
                    "" if d["scale"] == 1 else f" (coded at {d['coded_width']}x{d['coded_height']})"
                )
                print(
                    f"{args.input}: {d['width']}x{d['height']}{coded}, {d['bytes']} bytes, "
                    f"{d['bpp']:.4f} bpp, rate {d['rate']:.3f}, model {d['model_id']}, "
                    f"{d['groups_present']}/{d['groups_total']} y groups"
                )
                for s in d["sections"]:
                    print(f"  {s['name']:<10} {s['bytes']:>8} bytes")
                if d["capture"]:
                    print("  capture    " + ", ".join(f"{k} {v}" for k, v in d["capture"].items()))
                for w in d["words"]:
                    (x, y), *_ = w["quad"]
                    print(f"  word at ({x:.0f}, {y:.0f}): {w['text']}")
            return 0
        from textboost.codec.api import Codec
        from textboost.codec.image import load_image

        if args.cmd == "encode":
            img = load_image(args.input)
            current = args.model or "model"
            codec = Codec.load(args.model, **_backend(args))
            current = args.input
            text = not args.no_text
            meta = meta_from_args(args, args.input)
            if args.rate is not None:
                data = codec.encode(img, rate=args.rate, text=text, meta=meta)
            else:
                data = codec.encode_to_budget(
                    img, max_bytes=args.max_bytes, bpp=args.bpp, text=text, meta=meta
                )
            current = args.output
            Path(args.output).write_bytes(data)
            h, w = img.shape[:2]
            print(f"{args.output}: {len(data)} bytes, {8 * len(data) / (w * h):.4f} bpp")
        else:
            from PIL import Image

            data = _read(args.input)
            current = args.model or "model"
            codec = Codec.load(
                args.model, fusion=False if args.no_fusion else None, **_backend(args)
            )
            current = args.input
            img = codec.decode(data, groups=args.groups)
            current = args.output
            Image.fromarray(img).save(args.output)
            print(f"{args.output}: {img.shape[1]}x{img.shape[0]}")
        return 0
    except (BitstreamError, ValueError, FileNotFoundError, OSError, BackendUnavailable) as e:
        msg = str(e)
        prefix = "" if msg.startswith(str(current)) else f"{current}: "
        print(f"error: {prefix}{msg}", file=sys.stderr)
        return 2


def console() -> None:
    """The ``textboost`` console script and ``python -m textboost``: as :func:`main`, and a
    closed pipe (``info --json | head``) ends the process quietly, like a Unix tool."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())


if __name__ == "__main__":
    console()
