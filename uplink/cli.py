"""``python -m uplink``: send images (or ready `.tbx` files) to a ground station over UDP."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from textboost.cli import (
    OneLineArgumentParser,
    add_link_arguments,
    config_from_args,
    epoch_from_args,
    fail,
)

EXAMPLE = """example (field mode, UDP):
  python -m uplink send photos/ --to 192.0.2.10:9000 --max-bytes 1500 --rate-bps 9600 \\
      --cache-dir cache/encode --manifest sent.json
  (on the ground: python -m downlink receive --port 9000 --out received/)
"""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(
        prog="python -m uplink",
        description="Edge sender: encode images and send them over a UDP link.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser(
        "send",
        help="send a folder or files",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("inputs", nargs="+", type=Path, help="image files, .tbx files or folders")
    s.add_argument("--to", required=True, metavar="HOST:PORT", help="ground receiver")
    rate = s.add_mutually_exclusive_group()
    rate.add_argument("--rate", type=float, help="codec rate 0..1 (default 0.3)")
    rate.add_argument("--bpp", type=float, help="bits per pixel budget per image")
    rate.add_argument("--max-bytes", type=int, help="byte budget per image")
    s.add_argument(
        "--no-text",
        action="store_true",
        help="carry no words (default: spot text and send it in the text section, first)",
    )
    s.add_argument("--cache-dir", type=Path, help="encode cache directory")
    s.add_argument("--rate-bps", type=float, help="pace the link at this bit rate")
    s.add_argument("--storage-bytes", type=int, default=16 << 20)
    s.add_argument(
        "--interval-s",
        type=float,
        default=0.0,
        help="capture one image every this many seconds (default: all at once)",
    )
    s.add_argument("--timeout-s", type=float, default=600.0)
    s.add_argument("--manifest", type=Path, help="write {bundle id: file} JSON here")
    s.add_argument("--json", action="store_true", help="machine-readable summary")
    add_link_arguments(s)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prog = "python -m uplink"
    from uplink.cache import EncodeCache
    from uplink.encode import ByteBudget, EncodePipeline, FixedBpp, FixedRate
    from uplink.node import UplinkNode
    from uplink.sources import Capture, FolderSource, PathListSource
    from uplink.udp import UdpUplink, parse_host_port

    try:
        config = config_from_args(args)
        remote = parse_host_port(args.to)
        if args.max_bytes is not None:
            policy = ByteBudget(args.max_bytes)
        elif args.bpp is not None:
            policy = FixedBpp(args.bpp)
        else:
            policy = FixedRate(0.3 if args.rate is None else args.rate)
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
        node = UplinkNode(
            config,
            storage_bytes=args.storage_bytes,
            pipeline=EncodePipeline(policy, cache, text=not args.no_text),
            epoch=epoch_from_args(args),
        )
    except (ValueError, FileNotFoundError) as exc:
        fail(prog, str(exc))
    with UdpUplink(node, remote, rate_bps=args.rate_bps) as link:
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
