"""``python -m downlink``: receive images over UDP, decode, write PNGs and metrics."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from textboost.cli import (
    OneLineArgumentParser,
    add_link_arguments,
    config_from_args,
    epoch_from_args,
    fail,
)

EXAMPLE = """example (field mode, UDP):
  python -m downlink receive --port 9000 --out received/ --idle-timeout-s 60
  (on the edge: python -m uplink send photos/ --to <this host>:9000)
"""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(
        prog="python -m downlink",
        description="Ground receiver: reassemble and decode images from a UDP link.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "receive",
        help="listen on a UDP port",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("--port", type=int, required=True, help="UDP port to listen on")
    r.add_argument("--bind", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    r.add_argument("--out", type=Path, required=True, help="output folder")
    r.add_argument("--expect", type=int, help="stop after this many complete images")
    r.add_argument("--idle-timeout-s", type=float, default=60.0)
    r.add_argument("--timeout-s", type=float, default=3600.0)
    r.add_argument("--no-decode", action="store_true", help="write .tbx files only")
    r.add_argument(
        "--no-fusion",
        action="store_true",
        help="decode with the codec alone (default: fuse the received words into the image "
        "when the model's fusion block ships beside it)",
    )
    r.add_argument(
        "--references",
        type=Path,
        metavar="MANIFEST",
        help="JSON {bundle id: original image} (as written by uplink --manifest), for PSNR",
    )
    r.add_argument("--json", action="store_true", help="machine-readable results")
    add_link_arguments(r)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prog = "python -m downlink"
    from downlink.node import DownlinkNode
    from downlink.udp import UdpDownlink
    from textboost.codec.loader import CodecLoader

    try:
        config = config_from_args(args)
        if not 0 <= args.port < 65536:
            raise ValueError(f"--port {args.port}: expected 0..65535")
        references = {}
        if args.references is not None:
            try:
                manifest = json.loads(args.references.read_text())
                references = {int(k): Path(v) for k, v in manifest.items()}
            except (OSError, ValueError, AttributeError) as exc:
                raise ValueError(f"--references {args.references}: {exc}") from None
        node = DownlinkNode(
            config,
            out_dir=args.out,
            references=references,
            codec_factory=None if args.no_decode else CodecLoader(),
            fusion=False if args.no_fusion else None,
            on_text=None if args.json else _print_text,
            epoch=epoch_from_args(args),
        )
        link = UdpDownlink(node, (args.bind, args.port))
    except (ValueError, OSError) as exc:
        fail(prog, str(exc))
    with link:
        link.run(args.timeout_s, idle_timeout_s=args.idle_timeout_s, expect_bundles=args.expect)
    results = [asdict(r) for r in node.results.values()]
    if args.json:
        json.dump({"results": results, "stats": asdict(node.receiver.stats)}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for r in results:
            psnr = f"{r['psnr_db']:.2f} dB" if r["psnr_db"] is not None else ""
            print(
                f"bundle {r['bundle_id']:>5}  {'complete' if r['complete'] else 'partial ':8}  "
                f"groups {r['groups_delivered']:>2}  {r['bytes_delivered']:>7} B  "
                f"{r['png_path'] or r['error'] or ''}  {psnr}"
            )
            if r["words"]:
                print(f"              text: {' | '.join(w['text'] for w in r['words'])}")
    return 0


def _print_text(t) -> None:
    """One line per bundle as soon as its text section lands (before the image)."""
    if t.error:
        words = f"unreadable text section ({t.error})"
    else:
        words = " | ".join(t.strings) if t.words else "(no words)"
    print(f"bundle {t.bundle_id:>5}  text at {t.time_s:7.1f} s: {words}", flush=True)
