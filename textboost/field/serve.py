"""The ``serve`` subcommand both field services share: ``--config field.yaml``, one-line
errors before anything runs, SIGTERM/SIGINT end the loop cleanly (a kill -9 is survived by
the services' SQLite state, not by this).

A service that talks: one line on stdout at start (what it listens on, where it writes), one
per photo as it moves (:data:`SAY`), and at a stop one line saying what it waits for, then
one when it stopped. A stop does not wait for an encode or decode in progress: the image is
safe (still in the drop folder, or stored and marked not decoded) and is redone at the next
start. A second Ctrl-C ends the process at once."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from textboost.cli import fail
from textboost.field.config import FieldConfig, load_field_config

__all__ = [
    "SAY", "add_serve_parser", "addresses_in_use", "fixed_addresses", "serve", "start_line",
    "status",
]  # fmt: skip

# the events a running service prints, one line each (the JSONL log has them all)
SAY = {
    "uplink": ("encoding", "encoded", "acked", "failed", "rejected", "dropped"),
    "downlink": ("delivered", "duplicate", "abandoned", "decoded"),
}


def add_serve_parser(
    sub: Any, node: Literal["uplink", "downlink"], example: str
) -> argparse.ArgumentParser:
    """Add ``serve --config FILE [--max-s S]`` to a CLI's subparsers; returns it for the
    node's own options."""
    what = "edge sender" if node == "uplink" else "ground receiver"
    s = sub.add_parser(
        "serve",
        help=f"run the {what} as a service from field.yaml (persistent, exactly-once)",
        epilog=example,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--config", type=Path, required=True, help="field.yaml (docs/field.md)")
    s.add_argument("--max-s", type=float, help="stop after this many seconds (default: never)")
    st = sub.add_parser(
        "status",
        help=f"where the {what} stands (queue, in flight, last acknowledgement, peer), read "
        "from its state files; running or not",
    )
    st.add_argument("--config", type=Path, required=True, help="field.yaml (docs/field.md)")
    st.add_argument("--json", action="store_true", help="machine-readable")
    return s


def status(prog: str, args: argparse.Namespace, node: Literal["uplink", "downlink"]) -> int:
    """``status --config field.yaml``: print :func:`~textboost.field.status.field_status`."""
    import json

    from textboost.field.status import field_status, format_status

    try:
        config = load_field_config(args.config, need=node)
        st = field_status(node, config)
    except (ValueError, OSError) as exc:
        fail(prog, " ".join(str(exc).split()))
    print(json.dumps(st, indent=1) if args.json else format_status(st))
    return 0


def serve(
    prog: str,
    args: argparse.Namespace,
    node: Literal["uplink", "downlink"],
    make: Callable[[FieldConfig, str], Any],
) -> int:
    """Load the config, build the service with ``make(config, source)`` and run it until
    SIGTERM/SIGINT (or ``--max-s``). Errors before the start: one line, exit 2."""
    source = str(args.config)
    config: FieldConfig | None = None
    try:
        config = load_field_config(args.config, need=node)
        service = make(config, source)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE and config is not None:
            fail(prog, _in_use_message(node, config, source))
        fail(prog, " ".join(str(exc).split()))
    except ValueError as exc:
        fail(prog, " ".join(str(exc).split()))
    say = _printer(node)
    service.log.echo = lambda doc: say(_event_line(doc)) if doc["event"] in SAY[node] else None
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():  # a second Ctrl-C: at once
            say("stopped at once (second signal); unfinished work is redone at the next start")
            os._exit(130)
        stop.set()
        busy = service.busy()
        name = signal.Signals(signum).name
        say(f"{name}: stopping" + (f", not waiting for {busy}" if busy else "") + " ...")

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    say(start_line(node, config, service, source))
    try:
        service.run(stop, args.max_s)
    finally:
        left = service.busy()
        service.close(wait=False)
        say("stopped" + (f"; {left} redone at the next start" if left else ""))
    if left:  # the worker thread would hold the interpreter until it finished
        sys.stdout.flush()
        os._exit(0)
    return 0


def _printer(node: str) -> Callable[[str], None]:
    def say(line: str) -> None:
        print(f"{node}: {line}", flush=True)

    return say


def _event_line(doc: dict[str, Any]) -> str:
    """One event as a line for a person: what, which image, the essentials."""
    parts = [str(doc["event"])]
    if doc.get("image"):
        parts.append(str(doc["image"]))
    if doc.get("name") and doc["name"] != doc.get("image"):
        parts.append(f"({doc['name']})")
    if doc.get("epoch") is not None and doc.get("bundle") is not None:
        parts.append(f"e{doc['epoch']}_b{doc['bundle']}")
    if doc.get("bytes") is not None:
        parts.append(f"{doc['bytes']} B")
    for key in ("reason", "error", "png"):
        if doc.get(key):
            parts.append(f"{key}: {doc[key]}")
    if doc.get("encode_s") is not None:
        parts.append(f"in {doc['encode_s']} s (waited {doc.get('waited_s')} s)")
    if doc.get("queued") is not None:  # encoding: ahead of it; encoded: left behind it
        ahead = doc["event"] == "encoding"
        parts.append(f"{doc['queued']} {'ahead' if ahead else 'left'} in the encode queue")
    return " ".join(parts)


def start_line(node: str, config: FieldConfig, service: Any, source: str) -> str:
    """What the service listens on and where it writes, in one line."""
    kind = config.transport.kind
    if node == "downlink":
        dn = config.downlink
        assert dn is not None
        where = dn.listen if kind != "mavlink" else "the MAVLink endpoint"
        web = getattr(service, "web", None)
        page = f"; live page {web.url}" if web is not None else ""
        if web is not None and web.tiles_error is not None:
            page += f" (no basemap: downlink.tiles: {web.tiles_error})"
        return (f"serving {source}: listening on {kind} {where}; writing {dn.out_dir}, "
                f"log {dn.event_log}{page}; Ctrl-C or SIGTERM stops")  # fmt: skip
    up = config.uplink
    assert up is not None
    intake = f" and http://{up.intake}/images/NAME" if up.intake else ""
    to = up.peer if kind != "mavlink" else "the MAVLink endpoint"
    return (f"serving {source}: taking images from {up.drop_dir}{intake}; sending over {kind} "
            f"to {to}; log {up.event_log}; Ctrl-C or SIGTERM stops")  # fmt: skip


def fixed_addresses(node: str, config: FieldConfig) -> list[tuple[str, str, int]]:
    """``node``'s configured addresses with a fixed port: ``(key, host:port, socket type)``."""
    cands: list[tuple[str, str | None, int]] = []
    if node == "downlink" and config.downlink is not None:
        dn = config.downlink
        if config.transport.kind != "mavlink":
            cands.append(("downlink.listen", dn.listen, socket.SOCK_DGRAM))
        cands.append(("downlink.web", dn.web, socket.SOCK_STREAM))
    elif config.uplink is not None:
        up = config.uplink
        cands.append(("uplink.bind", up.bind, socket.SOCK_DGRAM))
        cands.append(("uplink.intake", up.intake, socket.SOCK_STREAM))
    return [(k, a, t) for k, a, t in cands if a and int(a.rpartition(":")[2]) != 0]


def addresses_in_use(node: str, config: FieldConfig) -> list[str]:
    """The configured addresses of ``node`` another process holds now (``key host:port``)."""
    busy = []
    for key, addr, kind in fixed_addresses(node, config):
        host, _, port = addr.rpartition(":")
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((host, int(port)))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    busy.append(f"{key} {addr}")
    return busy


def _in_use_message(node: str, config: FieldConfig, source: str) -> str:
    busy = addresses_in_use(node, config) or ["an address of the config"]
    return (f"{source}: {' and '.join(busy)}: address already in use; another {node} serve "
            f"is probably running (python -m {node} status --config {source}), or change "
            "the address in the config")
