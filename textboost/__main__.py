"""Command line: encode, decode and inspect `.tbx` files.

    python -m textboost encode IN.png OUT.tbx (--rate R | --bpp B | --max-bytes N) [--no-text]
                                              [--psnr] [--progress]
    python -m textboost decode IN.tbx OUT.png [--groups K] [--no-fusion] [--mask M.png]
    python -m textboost info IN.tbx [--json]     # sections, and the words carried
    python -m textboost eval DIR [--bpp B | --max-bytes N | --rate R] [--json]
                                              # bytes, bpp, PSNR, MS-SSIM per image, means

    --backend torch|onnxruntime|tensorrt (before the command) runs the transforms on that
    backend; onnxruntime and tensorrt use the graphs of `python -m export onnx` (--onnx-dir,
    default: the model id's cache folder) and never import torch.

By default the sender spots small text and carries it in the text section (inside the
budget), and the receiver fuses it with the decoded image; --no-text and --no-fusion
give the codec alone.

A budget search (--bpp, --max-bytes) draws its steps on stderr when that is a terminal,
or with --progress. Errors exit with code 2 and one line naming the file, or the option,
and the problem; arguments and images are checked before any work starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import warnings
from pathlib import Path

import numpy as np

from textboost.bitstream.container import BitstreamError, Container, section_name
from textboost.cli import (
    SearchProgress,
    add_budget_arguments,
    add_capture_arguments,
    add_effort_argument,
    add_version,
    meta_from_args,
    policy_from_args,
    printable,
    prog_name,
)
from textboost.codec.budget import METHODS
from textboost.codec.exported import BackendUnavailable
from textboost.settings.budget import EVAL_BUDGET
from textboost.text.payload import decode_words
from textboost.text.render import TextWarning


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
    add_budget_arguments(e, required=True)
    e.add_argument("--no-text", action="store_true", help="carry no spotted words")
    e.add_argument(
        "--restore", choices=("all", "closer"), default="all",
        help="which carried words the receiver's word block may draw into the picture: all "
        "(default: the most legible), or closer: only those it brings closer to this image "
        "(decodes the stream once more here; never draws a word the photo does not show)",
    )  # fmt: skip
    e.add_argument(
        "--search", choices=METHODS, default="predict",
        help="how a budget picks the rate and scale: predict (default: predicted bytes, the "
        "scale from the budget per pixel), check (the same, a near tie with the next larger "
        "scale settled by decoding both: closer to full, ≈ 2-5x the codec's time) or full "
        "(real bytes only, every candidate scale decoded)",
    )  # fmt: skip
    e.add_argument(
        "--psnr", action="store_true",
        help="decode the stream as the receiver would and print PSNR and MS-SSIM against "
        "the input",
    )  # fmt: skip
    e.add_argument("--progress", action="store_true", help=PROGRESS_HELP)
    add_effort_argument(e)
    add_capture_arguments(e)
    d = sub.add_parser("decode", help=".tbx → PNG")
    d.add_argument("input")
    d.add_argument("output")
    d.add_argument("--groups", type=int, help="use only the first K y groups")
    d.add_argument(
        "--no-fusion", action="store_true", help="the codec's own output, without the fusion block"
    )
    d.add_argument(
        "--mask",
        help="also write the restored-regions mask here (PNG, 8-bit): 0 where the picture is "
        "the codec's own, in each word rectangle the fusion block drew the word's spotter "
        "confidence (1..255 = 0..1)",
    )
    i = sub.add_parser("info", help="describe a .tbx file")
    i.add_argument("input")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    v = sub.add_parser(
        "eval", help=f"bytes, bpp, PSNR and MS-SSIM over a folder of images (default --bpp "
        f"{EVAL_BUDGET.bpp})",
    )  # fmt: skip
    v.add_argument("input", metavar="DIR", help="folder of images (png, jpg, tif, bmp, webp)")
    add_budget_arguments(v, default=f"--bpp {EVAL_BUDGET.bpp}")
    v.add_argument("--no-text", action="store_true", help="carry no spotted words")
    v.add_argument("--json", action="store_true", help="one JSON document on stdout")
    v.add_argument("--progress", action="store_true", help=PROGRESS_HELP)
    return p


PROGRESS_HELP = "draw the budget search's steps on stderr even when it is not a terminal"
def _check_arguments(args) -> str | None:
    """The first bad option value, as one line (before any file is read)."""
    if hasattr(args, "max_bytes"):
        try:
            _policy(args)
        except ValueError as e:
            return str(e)
    groups = getattr(args, "groups", None)
    if groups is not None and groups < 0:
        return f"--groups {groups}: expected 0 or more"
    return None


def _policy(args):
    return policy_from_args(args, EVAL_BUDGET)


def _quality(img, out) -> dict:
    """PSNR, and MS-SSIM where the evaluation extra (scipy) is installed."""
    try:
        from textboost.eval.metrics import quality
    except ImportError as e:
        from textboost.codec.image import psnr_db

        return {
            "psnr_db": psnr_db(img, out),
            "ms_ssim": None,
            "ms_ssim_skipped": f"MS-SSIM needs {e.name} (pip install 'textboost-link[eval]')",
        }
    return quality(img, out)


def _quality_text(q: dict) -> str:
    ms = f"MS-SSIM {q['ms_ssim']:.4f}" if q["ms_ssim"] is not None else q["ms_ssim_skipped"]
    return f"PSNR {q['psnr_db']:.2f} dB, {ms}"


def _eval(args, codec_factory) -> int:
    """``eval DIR``: one line per image and the means; with --json one document."""
    from textboost.eval.folder import check_images, evaluate_image, folder_images, summarise

    paths = folder_images(args.input)
    policy = _policy(args)
    check_images(paths, policy)
    codec = codec_factory()
    draw = SearchProgress.enabled(args.progress)
    rows = []
    for k, path in enumerate(paths, 1):
        progress = SearchProgress(prefix=f"[{k}/{len(paths)}] {path.name}: ") if draw else None
        try:
            r = evaluate_image(codec, path, policy, text=not args.no_text, progress=progress)
        except ValueError as e:
            msg = str(e)
            raise ValueError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
        finally:
            if progress is not None:
                progress.close()
        rows.append(r)
        if not args.json:
            print(
                f"{r['image']}: {r['width']}x{r['height']}, {r['bytes']} bytes, "
                f"{r['bpp']:.4f} bpp, {_quality_text(r)}; encode {r['encode_s']:.1f} s, "
                f"decode {r['decode_s']:.1f} s",
                flush=True,
            )
    summary = summarise(rows)
    if args.json:
        doc = {"settings": {"policy": policy.settings, "text": not args.no_text,
                            "model_id": codec.model_id.hex(),
                            "fusion": codec.fusion is not None},
               "images": rows, "summary": summary}  # fmt: skip
        print(json.dumps(doc, indent=1))
    else:
        ms = summary["ms_ssim_mean"]
        ms_text = "" if ms is None else (
            f", MS-SSIM {ms:.4f} ({summary['ms_ssim_images']} images)"
        )
        print(
            f"mean over {summary['images']} images ({policy.settings}): "
            f"{summary['bytes_mean']:.0f} bytes, {summary['bpp_mean']:.4f} bpp, "
            f"PSNR {summary['psnr_db_mean']:.2f} dB{ms_text}"
        )
    return 0


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
            {
                "text": w.text,
                "quad": [[round(v, 1) for v in p] for p in w.quad.tolist()],
                "score": round(w.score, 3),
                "style": None if w.style is None else dataclasses.asdict(w.style),
                "restored": w.restore,
            }
            for w in decode_words(c.text, h.width, h.height)
        ],
        "capture": h.meta.to_json() if h.meta is not None else None,
    }


def _backend(args) -> dict:
    return {"backend": args.backend, "device": args.device, "onnx_dir": args.onnx_dir}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if (problem := _check_arguments(args)) is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
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
                    capture = ", ".join(f"{k} {v}" for k, v in d["capture"].items())
                    print(printable(f"  capture    {capture}"))
                for w in d["words"]:
                    (x, y), *_ = w["quad"]
                    print(printable(f"  word at ({x:.0f}, {y:.0f}): {w['text']}"))
            return 0
        from textboost.codec.image import load_image
        from textboost.pipeline.api import Pipeline

        def load_codec(**kw) -> Pipeline:
            nonlocal current
            before, current = current, args.model or "model"
            codec = Pipeline.load(args.model, **kw, **_backend(args))
            current = before
            return codec

        if args.cmd == "eval":
            return _eval(args, load_codec)
        if args.cmd == "encode":
            img = load_image(args.input)
            h, w = img.shape[:2]
            _policy(args).check(w, h, args.input)  # an image too small for --bpp, now
            meta = meta_from_args(args, args.input)
            codec = load_codec()
            text = not args.no_text
            if args.rate is not None:
                data = codec.encode(
                    img, rate=args.rate, text=text, meta=meta, effort=args.effort
                )
            else:
                progress = SearchProgress() if SearchProgress.enabled(args.progress) else None
                try:
                    data = codec.encode_to_budget(
                        img, max_bytes=args.max_bytes, bpp=args.bpp, text=text, meta=meta,
                        progress=progress, effort=args.effort, method=args.search,
                    )  # fmt: skip
                finally:
                    if progress is not None:
                        progress.close()
            if args.restore == "closer" and text:
                data = codec.choose_restored(data, img)
            current = args.output
            Path(args.output).write_bytes(data)
            line = f"{args.output}: {len(data)} bytes, {8 * len(data) / (w * h):.4f} bpp"
            if args.psnr:
                line += ", " + _quality_text(_quality(img, codec.decode(data)))
            print(line)
        else:
            from PIL import Image

            data = _read(args.input)
            codec = load_codec(fusion=False if args.no_fusion else None)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", TextWarning)
                got = codec.receive(data, groups=args.groups, guidance=bool(args.mask))
                img, mask = got.image, None
                if args.mask:
                    mask = (
                        got.guidance.restored_mask()
                        if got.guidance is not None
                        else np.zeros(img.shape[:2], np.uint8)
                    )
            notes = (str(w.message) for w in caught if issubclass(w.category, TextWarning))
            for note in dict.fromkeys(notes):
                print(f"warning: {args.input}: {note}", file=sys.stderr)
            current = args.output
            Image.fromarray(img).save(args.output)
            if mask is not None:
                current = args.mask
                Image.fromarray(mask).save(args.mask)
            print(f"{args.output}: {img.shape[1]}x{img.shape[0]}")
        return 0
    except (BitstreamError, ValueError, FileNotFoundError, OSError, BackendUnavailable) as e:
        msg = str(e)
        prefix = "" if msg.startswith(str(current)) else f"{current}: "
        print(printable(f"error: {prefix}{msg}"), file=sys.stderr)
        return 2


def console() -> None:
    """The ``textboost`` console script and ``python -m textboost``: as :func:`main`, and a
    closed pipe (``info --json | head``) ends the process quietly, like a Unix tool."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())


if __name__ == "__main__":
    console()
