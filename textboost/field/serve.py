"""The ``serve`` subcommand both field services share: ``--config field.yaml``, one-line
errors before anything runs, SIGTERM/SIGINT end the loop cleanly (a kill -9 is survived by
the services' SQLite state, not by this)."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from textboost.cli import fail
from textboost.field.config import FieldConfig, load_field_config

__all__ = ["add_serve_parser", "serve"]


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
    return s


def serve(
    prog: str,
    args: argparse.Namespace,
    node: Literal["uplink", "downlink"],
    make: Callable[[FieldConfig, str], Any],
) -> int:
    """Load the config, build the service with ``make(config, source)`` and run it until
    SIGTERM/SIGINT (or ``--max-s``). Errors before the start: one line, exit 2."""
    source = str(args.config)
    try:
        config = load_field_config(args.config, need=node)
        service = make(config, source)
    except (ValueError, OSError) as exc:
        fail(prog, " ".join(str(exc).split()))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        service.run(stop, args.max_s)
    finally:
        service.close()
    return 0
