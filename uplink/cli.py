"""``python -m uplink``: send images (or ready `.tbx` files) to a ground station over UDP,
encode one file, or check the device (``verify``: stage times and PSNR).

    python -m uplink send IMG|DIR|TBX ... --to HOST:PORT [--max-bytes N] [codec options]
    python -m uplink encode IMG OUT.tbx (--max-bytes N | --bpp B | --rate R) [--no-text]
    python -m uplink verify [--image IMG] [--max-bytes N] [--no-text] [--json]
    python -m uplink serve --config field.yaml     # the service (docs/field.md)

Codec options (every command): --backend torch|onnxruntime|tensorrt, --onnx-dir DIR (the
graphs of `python -m export onnx`; default: the model id's cache folder), --device
cpu|cuda[:N]|auto, --model FILE. The exported backends never import torch. A missing
runtime, model file or exported graphs is a one-line error (exit 2) before anything runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from textboost.cli import (
    OneLineArgumentParser,
    add_budget_arguments,
    add_capture_arguments,
    add_codec_arguments,
    add_effort_argument,
    add_link_arguments,
    add_version,
    config_from_args,
    epoch_from_args,
    fail,
    loader_from_args,
    meta_from_args,
    policy_from_args,
    printable,
    prog_name,
)
from textboost.field.transport_args import add_transport_arguments, link_mtu, transport_from_args
from textboost.settings.budget import DEFAULT_BUDGET
from textboost.settings.queue import DEFAULT_STORAGE_BYTES, EdgeQueue

EXAMPLE = """example (field mode, UDP):
  python -m uplink send photos/ --to 192.0.2.10:9000 --max-bytes 1500 --rate-bps 9600 \\
      --cache-dir cache/encode --manifest sent.json
  (on the ground: python -m downlink receive --port 9000 --out received/)
  MAVLink, through the vehicle's mavlink-router, capped at 16 kbit/s of the radio:
  python -m uplink send photos/ --mavlink udpout:127.0.0.1:14560 --rate-bps 16000
  on a Jetson, torch-free: add --backend onnxruntime --onnx-dir onnx/ --device cuda
"""

ENCODE_EXAMPLE = """example:
  python -m uplink encode photo.png photo.tbx --max-bytes 1500 --backend onnxruntime
  (on the ground: python -m downlink decode photo.tbx photo.png)
"""

VERIFY_EXAMPLE = """example (the first thing to run on a device):
  python -m uplink verify --backend onnxruntime --onnx-dir onnx/ --device cuda
"""


SERVE_EXAMPLE = """example (a field trial; configs/field.yaml runs on loopback):
  python -m uplink serve --config configs/field.yaml
  (a camera writes NAME.tmp into uplink.drop_dir and renames it to NAME.jpg; or
   curl --data-binary @photo.jpg http://127.0.0.1:8470/images/photo.jpg)
"""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(
        prog=PROG,
        description="Edge sender: encode images and send them over a UDP link; encode one "
        "file; check the device.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(p)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser(
        "send",
        help="send a folder or files",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("inputs", nargs="+", type=Path, help="image files, .tbx files or folders")
    s.add_argument("--to", metavar="HOST:PORT", help="ground receiver (UDP, CCSDS)")
    add_budget_arguments(s, default=f"--max-bytes {DEFAULT_BUDGET.max_bytes}")
    s.add_argument(
        "--no-text",
        action="store_true",
        help="carry no words (default: spot text and send it in the text section, first)",
    )
    s.add_argument(
        "--no-meta",
        action="store_true",
        help="send no capture metadata (default: each image's EXIF and IMAGE.json sidecar)",
    )
    s.add_argument(
        "--no-name", action="store_true",
        help="do not carry each file's name (default: its first 32 bytes, in the header)",
    )  # fmt: skip
    s.add_argument("--cache-dir", type=Path, help="encode cache directory")
    s.add_argument("--rate-bps", type=float,
                   help="pace the link at this on-air bit rate (with --mavlink: the cap on the "
                   "image traffic, MAVLink framing counted, so telemetry keeps the rest)")
    queue = EdgeQueue.model_fields
    s.add_argument("--storage-bytes", type=int, default=DEFAULT_STORAGE_BYTES,
                   help=f"{queue['storage_bytes'].description} ({DEFAULT_STORAGE_BYTES})")
    s.add_argument("--drop-policy", choices=["oldest", "lowest_priority"],
                   default=queue["drop_policy"].default, help=queue["drop_policy"].description)
    s.add_argument(
        "--interval-s",
        type=float,
        default=0.0,
        help="capture one image every this many seconds (default: all at once)",
    )
    s.add_argument("--timeout-s", type=float, default=600.0)
    s.add_argument("--manifest", type=Path, help="write {bundle id: file} JSON here")
    s.add_argument("--json", action="store_true", help="machine-readable summary")
    add_codec_arguments(s)
    add_link_arguments(s)
    add_transport_arguments(s)

    e = sub.add_parser(
        "encode",
        help="encode one image to a .tbx file",
        epilog=ENCODE_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("input", type=Path, help="image file")
    e.add_argument("output", type=Path, help="the .tbx file to write")
    add_budget_arguments(e, required=True)
    e.add_argument("--no-text", action="store_true", help="carry no words (skip the spotter)")
    e.add_argument("--json", action="store_true", help="machine-readable result")
    add_effort_argument(e)
    add_capture_arguments(e)
    add_codec_arguments(e)

    v = sub.add_parser(
        "verify",
        help="encode and decode a shipped image: each stage's time and the PSNR",
        epilog=VERIFY_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    v.add_argument("--image", type=Path, help="image (default: a shipped Kodak image with text)")
    v.add_argument("--max-bytes", type=int, default=DEFAULT_BUDGET.max_bytes,
                   help=f"byte budget ({DEFAULT_BUDGET.max_bytes})")
    v.add_argument("--no-text", action="store_true", help="skip the OCR spotter")
    v.add_argument("--min-psnr", type=float, default=20.0, help="fail below this PSNR (20 dB)")
    v.add_argument("--json", action="store_true", help="machine-readable result")
    add_codec_arguments(v)

    from textboost.field.serve import add_serve_parser

    add_serve_parser(sub, "uplink", SERVE_EXAMPLE)
    return p


PROG = prog_name("uplink", "uplink")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "encode":
        return _encode(args)
    if args.command == "verify":
        return _verify(args)
    if args.command == "status":
        from textboost.field.serve import status

        return status(PROG, args, "uplink")
    if args.command == "serve":
        from textboost.field.serve import serve
        from uplink.service import UplinkService

        # Pillow warns on stderr for each malformed EXIF tag it skips and each header over
        # its bomb threshold; the service's event log says what became of each file instead
        # (a long run's stderr stays readable)
        warnings.filterwarnings("ignore", module=r"PIL\.")
        return serve(PROG, args, "uplink", lambda c, src: UplinkService(c, source=src))
    return _send(args)


def _policy(args):
    """The rate policy of --max-bytes / --bpp / --rate (default: the field service's); raises
    ValueError naming the option before anything is loaded."""
    return policy_from_args(args, effort=getattr(args, "effort", 0))  # effort: encode only


def _encode(args) -> int:
    from textboost.bitstream.container import Container
    from textboost.text.payload import decode_words
    from uplink.encode import EncodePipeline

    if args.input.suffix.lower() == ".tbx":
        fail(PROG, f"{args.input}: already a .tbx stream; encode takes an image")
    try:
        policy = _policy(args)
        loader = loader_from_args(args, fusion=False)  # a sender never fuses
    except (ValueError, OSError, RuntimeError) as exc:
        fail(PROG, _message(exc))
    try:
        meta = meta_from_args(args, args.input)
        pipe = EncodePipeline(policy, None, loader, text=not args.no_text, meta=False, name=False)
        enc = pipe.encode(args.input, meta=meta)
    except (ValueError, OSError, RuntimeError) as exc:
        fail(PROG, _message(exc, args.input))
    try:
        args.output.write_bytes(enc.data)
    except OSError as exc:
        fail(PROG, f"{args.output}: {exc.strerror}")
    c = Container.parse(enc.data)
    words = [w.text for w in decode_words(c.text, enc.width, enc.height)]
    result = {
        "output": str(args.output),
        "bytes": len(enc.data),
        "bpp": round(enc.bpp, 5),
        "width": enc.width,
        "height": enc.height,
        "text_bytes": len(c.text),
        "words": words,
        "groups": len(c.groups),
        "encode_s": round(enc.encode_s, 3),
        "backend": args.backend,
        "device": args.device,
    }
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(
            f"{args.output}: {len(enc.data)} bytes, {enc.bpp:.4f} bpp, {enc.width}x{enc.height}, "
            f"{len(words)} words ({len(c.text)} B), {len(c.groups)} y groups; "
            f"{enc.encode_s:.2f} s on {args.backend} ({args.device})"
        )
        if words:
            print(printable(f"  text: {' | '.join(words)}"))
    return 0


def _verify(args) -> int:
    from textboost.pipeline.verify import format_verify, verify

    t = time.perf_counter()
    try:
        loader = loader_from_args(args)  # one-line errors for what is missing
        codec = loader()
    except (ValueError, OSError, RuntimeError) as exc:
        fail(PROG, _message(exc))
    load_s = time.perf_counter() - t
    try:
        r = verify(
            backend=args.backend,
            device=args.device,
            image=args.image,
            max_bytes=args.max_bytes,
            text=not args.no_text,
            min_psnr=args.min_psnr,
            codec=codec,
        )
    except (ValueError, OSError, RuntimeError) as exc:
        fail(PROG, _message(exc, args.image))
    r.pop("_decoded")
    r["seconds"]["load"] = r["seconds_first_call"]["load"] = round(load_s, 4)
    if args.json:
        json.dump(r, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print("\n".join(format_verify(r)))
    return 0 if r["ok"] else 1


def _message(exc: Exception, path: Path | None = None) -> str:
    """One line; prefixed with the input file unless the message names it already."""
    msg = " ".join(str(exc).split())
    if path is None or str(path) in msg:
        return msg
    return f"{path}: {msg}"


def _send(args) -> int:
    prog = PROG
    from textboost.field.udp import parse_host_port
    from uplink.cache import EncodeCache
    from uplink.driver import FieldUplink
    from uplink.encode import EncodePipeline
    from uplink.node import UplinkNode
    from uplink.sources import Capture, FolderSource, PathListSource

    try:
        if (args.to is None) == (args.mavlink is None):
            raise ValueError("give --to HOST:PORT (UDP, CCSDS) or --mavlink ENDPOINT, one of them")
        args.mtu_bytes = link_mtu(args)
        config = config_from_args(args)
        remote = None if args.to is None else parse_host_port(args.to)
        policy = _policy(args)
        captures: list[Capture] = []
        for path in args.inputs:
            if path.is_dir():
                source = FolderSource(
                    path, args.interval_s, start_s=len(captures) * args.interval_s
                )
            else:
                source = PathListSource([path], [len(captures) * args.interval_s])
            captures += list(source)
        cache = EncodeCache(args.cache_dir) if args.cache_dir is not None else None
        # the backend, its runtime, the model and the exported graphs: checked now, one line
        loader = loader_from_args(args, fusion=False)  # a sender never fuses
        node = UplinkNode(
            config,
            storage_bytes=args.storage_bytes,
            drop_policy=args.drop_policy,
            pipeline=EncodePipeline(
                policy, cache, loader, text=not args.no_text, meta=not args.no_meta,
                name=not (args.no_meta or args.no_name),
            ),
            epoch=epoch_from_args(args),
        )
        bind = ("0.0.0.0", 0) if remote is not None else None
        link = FieldUplink(
            node, transport_from_args(args, "uplink", bind, remote), rate_bps=args.rate_bps
        )
    except (ValueError, OSError, RuntimeError) as exc:
        fail(prog, _message(exc))
    with link:
        finished = link.run(args.timeout_s, captures)
    st = node.sender.stats
    summary = {
        "finished": finished,
        "encode_errors": link.encode_errors,
        "images": [
            {
                "image": r.image_id,
                "bytes": r.size_bytes,
                "bundle_id": r.bundle_id,
                "acked_s": r.acked_s,
                "failed_s": r.failed_s,
                "dropped": r.dropped.reason if r.dropped else None,
            }
            for r in node.images.values()
        ],
        "on_air_bytes": st.on_air_bytes,
        "payload_bytes": st.payload_bytes,
        "header_bytes": st.header_bytes,
        "fec_bytes": st.fec_bytes,
        "retransmission_bytes": st.retransmission_bytes,
        "efficiency": round(st.efficiency, 4),
        "transport": link.transport.stats.as_dict(),  # on-air bytes, foreign traffic refused
    }
    if args.manifest is not None:
        paths = {c.image_id: str(c.path.resolve()) for c in captures}
        manifest = {b: paths[i] for b, i in node.bundle_image.items()}
        args.manifest.write_text(json.dumps(manifest, indent=1))
    if args.json:
        json.dump(summary, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for r in summary["images"]:
            state = (
                "acked"
                if r["acked_s"] is not None
                else r["dropped"] or ("failed" if r["failed_s"] is not None else "sent")
            )
            print(f"{r['image']:<32} {r['bytes']:>7} B  bundle {r['bundle_id']!s:>5}  {state}")
        for err in link.encode_errors:
            print(f"not sent: {err}")
        print(
            f"on air {st.on_air_bytes} B (payload {st.payload_bytes}, header {st.header_bytes}, "
            f"FEC {st.fec_bytes}, retransmitted {st.retransmission_bytes}); "
            f"efficiency {st.efficiency:.3f}"
        )
    return 0 if finished and not link.encode_errors else 1
