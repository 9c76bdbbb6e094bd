"""``python -m downlink``: receive images over UDP, decode, write PNGs and metrics; or
decode one `.tbx` file.

    python -m downlink receive --port P --out DIR [--no-fusion] [codec options]
    python -m downlink decode IN.tbx OUT.png [--no-fusion] [--groups K] [codec options]
    python -m downlink serve --config field.yaml   # the service (docs/field.md)
    python -m downlink export DIR [--geojson F] [--kml F]   # delivered images on a map
    python -m downlink cot DIR --to udp://HOST:PORT|tcp://HOST:PORT|tls://HOST:PORT?cert=..   # TAK

Codec options: --backend torch|onnxruntime|tensorrt, --onnx-dir DIR (the graphs of
`python -m export onnx`; default: the model id's cache folder), --device cpu|cuda[:N]|auto,
--model FILE. The exported backends never import torch. A missing runtime, model file or
exported graphs is a one-line error (exit 2) before anything runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np

from textboost.cli import (
    OneLineArgumentParser,
    add_codec_arguments,
    add_link_arguments,
    add_version,
    config_from_args,
    epoch_from_args,
    fail,
    loader_from_args,
    printable,
    prog_name,
)
from textboost.field.transport_args import add_transport_arguments, link_mtu, transport_from_args

EXAMPLE = """example (field mode, UDP):
  python -m downlink receive --port 9000 --out received/ --idle-timeout-s 60
  (on the edge: python -m uplink send photos/ --to <this host>:9000)
  MAVLink (beside the autopilot's telemetry, e.g. from mavlink-router):
  python -m downlink receive --mavlink udpin:0.0.0.0:14560 --out received/
  on a GPU ground station: add --backend onnxruntime --device cuda (or tensorrt)
"""

EXPORT_EXAMPLE = """examples (FOLDER: the receiver's --out, or downlink.out_dir of field.yaml):
  python -m downlink export --config configs/field.yaml --geojson images.geojson --kml images.kml
  python -m downlink export received/ --geojson images.geojson     (links relative to the file)
  python -m downlink cot received/ --to udp://239.2.3.1:6969      (TAK SA multicast)
  python -m downlink cot received/ --to tcp://takserver:8087 --base-url http://ground:8080/files/
  python -m downlink cot received/ --to 'tls://takserver:8089?cert=ground.pem&key=ground.pem&ca=ca.pem'
  (--base-url: where the pictures are served; the live page serves them at /files/NAME.png)
"""

SERVE_EXAMPLE = """example (a field trial; configs/field.yaml runs on loopback):
  python -m downlink serve --config configs/field.yaml --web 127.0.0.1:8080
  (writes downlink.out_dir/NAME.tbx, .json, .png and the JSONL event log; the live page at
  http://127.0.0.1:8080/ shows each image as its words and groups land)
"""

DECODE_EXAMPLE = """examples:
  python -m downlink decode photo.tbx photo.png --backend onnxruntime
  python -m downlink decode photo.tbx photo.png --mask photo.mask.png   (restored regions)
"""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(
        prog=PROG,
        description="Ground receiver: reassemble and decode images from a UDP link; decode "
        "one file.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(p)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "receive",
        help="listen on a UDP port",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("--port", type=int, help="UDP port to listen on (not with --mavlink)")
    r.add_argument("--bind", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    r.add_argument("--out", type=Path, required=True, help="output folder")
    r.add_argument("--expect", type=int, help="stop after this many complete images")
    r.add_argument("--linger-s", type=float,
                   help="with --expect met, answer until no frame came for this long, so a "
                        "lost FIN is sent again (default 3 x rto_s)")
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
    add_codec_arguments(r)
    add_link_arguments(r)
    add_transport_arguments(r)

    d = sub.add_parser(
        "decode",
        help="decode one .tbx file to a PNG",
        epilog=DECODE_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("input", type=Path, help=".tbx file")
    d.add_argument("output", type=Path, help="image file to write (PNG)")
    d.add_argument("--groups", type=int, help="use only the first K y groups")
    d.add_argument(
        "--no-fusion",
        action="store_true",
        help="the codec's own output (default: fuse the carried words into the image when "
        "the model's fusion block ships beside it)",
    )
    d.add_argument("--json", action="store_true", help="machine-readable result")
    d.add_argument(
        "--mask",
        type=Path,
        help="also write the restored-regions mask here (PNG, 8-bit): 0 where the picture is "
        "the codec's own, in each word rectangle the fusion block drew the word's spotter "
        "confidence (1..255 = 0..1)",
    )
    add_codec_arguments(d)

    x = sub.add_parser(
        "export",
        help="GeoJSON / KML of the delivered images (position, time, strings, picture)",
        epilog=EXPORT_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    x.add_argument("folder", type=Path, nargs="?", help="the receiver's output folder")
    x.add_argument("--config", type=Path, help="field.yaml: read downlink.out_dir (no FOLDER)")
    x.add_argument("--geojson", type=Path, help="GeoJSON file to write")
    x.add_argument("--kml", type=Path, help="KML file to write")
    x.add_argument("--base-url", help="prefix for picture links, e.g. http://ground:8080/files/ "
                   "(default: paths relative to the written file)")

    c = sub.add_parser(
        "cot",
        help="send Cursor-on-Target events of the delivered images to a TAK server",
        epilog=EXPORT_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("folder", type=Path, nargs="?", help="the receiver's output folder")
    c.add_argument("--config", type=Path, help="field.yaml: read downlink.out_dir (no FOLDER)")
    c.add_argument("--to", required=True, metavar="URL",
                   help="udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT?cert=PEM&key=PEM&ca=PEM")
    c.add_argument("--stale-s", type=float, default=3600.0, help="events go stale after (3600)")
    c.add_argument("--callsign", default="TEXTBOOST", help="callsign of the image markers")
    c.add_argument("--base-url", help="prefix for picture links: the live page's "
                   "http://HOST:PORT/files/ (default: bare file names)")

    from textboost.field.serve import add_serve_parser

    s = add_serve_parser(sub, "downlink", SERVE_EXAMPLE)
    s.add_argument(
        "--web", metavar="HOST:PORT",
        help="serve the live page here (overrides downlink.web; e.g. 127.0.0.1:8080)",
    )  # fmt: skip
    return p


PROG = prog_name("downlink", "downlink")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "decode":
        return _decode(args)
    if args.command == "status":
        from textboost.field.serve import status

        return status(PROG, args, "downlink")
    if args.command == "serve":
        from downlink.service import DownlinkService
        from textboost.field.serve import serve
        from textboost.field.udp import parse_host_port

        if args.web is not None:
            try:
                parse_host_port(args.web)
            except ValueError as exc:
                fail(PROG, f"--web {args.web}: {exc}")
        return serve(
            PROG, args, "downlink", lambda c, src: DownlinkService(c, source=src, web=args.web)
        )
    if args.command in ("export", "cot"):
        return _handoff(args)
    return _receive(args)


def _handoff_folder(args) -> Path:
    """FOLDER, or ``downlink.out_dir`` of ``--config``; a missing folder is an error that
    names the folder the field config writes to (``configs/field.yaml`` when present)."""
    from textboost.field.config import ConfigError, load_field_config

    cfg_path = args.config
    if args.folder is not None and cfg_path is not None:
        fail(PROG, f"{args.command}: give FOLDER or --config, not both")
    if cfg_path is None and Path("configs/field.yaml").is_file():
        cfg_path_hint: Path | None = Path("configs/field.yaml")
    else:
        cfg_path_hint = cfg_path
    out = None
    if cfg_path_hint is not None:
        try:
            dn = load_field_config(cfg_path_hint, need="downlink").downlink
            out = dn.out_dir if dn is not None else None
        except ConfigError as exc:
            if args.folder is None:
                fail(PROG, _one_line(exc))
    folder = args.folder if args.folder is not None else out
    if folder is None:
        fail(PROG, f"{args.command}: give the receiver's output folder or --config field.yaml")
    if not folder.is_dir():
        hint = (f"; {cfg_path_hint} writes to downlink.out_dir {out}"
                if out is not None and Path(out) != folder else "")  # fmt: skip
        fail(PROG, f"{folder}: not a folder (the receiver's --out, or downlink.out_dir){hint}")
    return folder


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _decode(args) -> int:
    from PIL import Image

    from downlink.node import words_json
    from textboost.text.render import TextWarning

    try:
        data = args.input.read_bytes()
    except OSError as exc:
        fail(PROG, f"{args.input}: {exc.strerror}")
    if args.groups is not None and args.groups < 0:
        fail(PROG, f"--groups {args.groups}: expected >= 0")
    try:
        loader = loader_from_args(args, fusion=False if args.no_fusion else None)
    except (ValueError, OSError, RuntimeError) as exc:
        fail(PROG, _one_line(exc))
    pipe = loader()
    try:
        # The words never cost the picture: an unreadable text section or a word that
        # cannot be drawn is a warning (TextWarning), and the image is written. One parse,
        # one reading of the words (Pipeline.receive).
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TextWarning)
            got = pipe.receive(data, groups=args.groups,
                               fusion=False if args.no_fusion else None, guidance=bool(args.mask))
        img, fused, guidance, words = got.image, got.fused, got.guidance, words_json(got.words)
    except (ValueError, OSError, RuntimeError) as exc:  # BitstreamError is a ValueError
        msg = _one_line(exc)
        fail(PROG, msg if msg.startswith(str(args.input)) else f"{args.input}: {msg}")
    notes = list(
        dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, TextWarning))
    )
    for note in notes:
        print(f"{PROG}: warning: {args.input}: {note}", file=sys.stderr)
    try:
        Image.fromarray(img).save(args.output)
        if args.mask:
            mask = guidance.restored_mask() if guidance else np.zeros(img.shape[:2], np.uint8)
            Image.fromarray(mask).save(args.mask)
    except (OSError, ValueError) as exc:  # ValueError: an unknown image extension
        fail(PROG, f"{args.mask if args.mask else args.output}: {_one_line(exc)}")
    if args.json:
        json.dump(
            {"output": str(args.output), "width": img.shape[1], "height": img.shape[0],
             "bytes": len(data), "fused": fused, "words": words, "text_warnings": notes,
             "backend": args.backend, "device": args.device},
            sys.stdout, indent=1,
        )  # fmt: skip
        sys.stdout.write("\n")
    else:
        print(
            f"{args.output}: {img.shape[1]}x{img.shape[0]} from {len(data)} bytes "
            f"({'fused with the words' if fused else 'codec alone'}) on {args.backend} "
            f"({args.device})"
        )
        if words:
            print(printable(f"  text: {' | '.join(w['text'] for w in words)}"))
    return 0


def _receive(args) -> int:
    prog = PROG
    from downlink.driver import FieldDownlink
    from downlink.node import DownlinkNode

    try:
        if (args.port is None) == (args.mavlink is None):
            raise ValueError("give --port PORT (UDP, CCSDS) or --mavlink ENDPOINT, one of them")
        if args.port is not None and not 0 <= args.port < 65536:
            raise ValueError(f"--port {args.port}: expected 0..65535")
        if args.linger_s is not None and not args.linger_s >= 0:
            raise ValueError(f"--linger-s {args.linger_s}: expected seconds >= 0")
        args.mtu_bytes = link_mtu(args)
        config = config_from_args(args)
        references = {}
        if args.references is not None:
            try:
                manifest = json.loads(args.references.read_text())
                references = {int(k): Path(v) for k, v in manifest.items()}
            except (OSError, ValueError, AttributeError) as exc:
                raise ValueError(f"--references {args.references}: {exc}") from None
        # the backend, its runtime, the model and the exported graphs: checked now, one line
        loader = (
            None
            if args.no_decode
            else loader_from_args(args, fusion=False if args.no_fusion else None)
        )
        node = DownlinkNode(
            config,
            out_dir=args.out,
            references=references,
            codec_factory=loader,
            fusion=False if args.no_fusion else None,
            on_text=None if args.json else _print_text,
            epoch=epoch_from_args(args),
        )
        bind = None if args.port is None else (args.bind, args.port)
        link = FieldDownlink(node, transport_from_args(args, "downlink", bind, None))
    except (ValueError, OSError, RuntimeError) as exc:
        fail(prog, _one_line(exc))
    with link:
        link.run(args.timeout_s, idle_timeout_s=args.idle_timeout_s, expect_bundles=args.expect,
                 linger_s=args.linger_s)
    results = [asdict(r) for r in node.results.values()]
    if args.json:
        json.dump({"results": results, "stats": asdict(node.receiver.stats),
                   "transport": link.transport.stats.as_dict()}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for r in results:
            psnr = f"{r['psnr_db']:.2f} dB" if r["psnr_db"] is not None else ""
            print(printable(
                f"bundle {r['bundle_id']:>5}  {'complete' if r['complete'] else 'partial ':8}  "
                f"groups {r['groups_delivered']:>2}  {r['bytes_delivered']:>7} B  "
                f"{r['png_path'] or r['error'] or ''}  {psnr}"
            ))  # fmt: skip
            if r["words"]:
                text = " | ".join(w["text"] for w in r["words"])
                print(printable(f"              text: {text}"))
        foreign = link.transport.stats.foreign
        if foreign:  # other traffic on the link (telemetry, other APIDs, junk): not ours
            print("refused: " + ", ".join(f"{k} {v}" for k, v in sorted(foreign.items())))
    return 0


def _handoff(args) -> int:
    from downlink import handoff

    args.folder = _handoff_folder(args)
    try:
        images = handoff.load_delivered(args.folder)
    except ValueError as exc:
        fail(PROG, _one_line(exc))
    located = [d for d in images if d.located]
    if args.command == "export":
        if args.geojson is None and args.kml is None:
            fail(PROG, "export: give --geojson FILE and/or --kml FILE")
        written = []
        try:
            if args.geojson is not None:
                doc = handoff.to_geojson(located, args.base_url, args.geojson.parent)
                args.geojson.write_text(json.dumps(doc, indent=1) + "\n")
                written.append(str(args.geojson))
            if args.kml is not None:
                args.kml.write_text(handoff.to_kml(located, args.base_url, args.kml.parent))
                written.append(str(args.kml))
        except OSError as exc:
            fail(PROG, f"{exc.filename}: {exc.strerror}")
        skipped = [d.title for d in images if not d.located]
        print(f"{len(located)} of {len(images)} images have a position"
              + (f" (no position, left out: {', '.join(skipped)})" if skipped else "")
              + f"; wrote {' and '.join(written)}")  # fmt: skip
        return 0
    if args.stale_s <= 0:
        fail(PROG, f"--stale-s {args.stale_s}: expected a positive number of seconds")
    try:
        handoff.parse_cot_url(args.to)
        events = [
            ev
            for d in located
            for ev in handoff.cot_events(d, stale_s=args.stale_s, base_url=args.base_url,
                                         callsign=args.callsign)
        ]  # fmt: skip
        sent = handoff.send_cot(events, args.to)
    except (ValueError, OSError) as exc:
        fail(PROG, f"--to {args.to}: {_one_line(exc)}")
    print(f"{sent} CoT events for {len(located)} located images sent to {args.to}")
    return 0


def _print_text(t) -> None:
    """One line per bundle as soon as its text section lands (before the image)."""
    if t.error:
        words = f"unreadable text section ({t.error})"
    else:
        words = " | ".join(t.strings) if t.words else "(no words)"
    print(printable(f"bundle {t.bundle_id:>5}  text at {t.time_s:7.1f} s: {words}"), flush=True)
