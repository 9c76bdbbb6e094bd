"""Command-line options for a :class:`LinkConfig`, shared by the uplink and downlink CLIs
(both ends must be started with equal link options)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from textboost.protocol.config import LinkConfig

__all__ = ["OneLineArgumentParser", "add_link_arguments", "config_from_args"]


class OneLineArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (``prog: error: ...``), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def fail(prog: str, message: str) -> NoReturn:
    """Print a one-line error naming the bad input and exit with code 2."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    raise SystemExit(2)


def add_link_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("link protocol (must match on both ends)")
    g.add_argument("--mtu", type=int, default=256, metavar="BYTES", help="largest frame (256)")
    g.add_argument("--arq", choices=["immediate", "deferred", "none"], default="deferred")
    g.add_argument("--policy", choices=["fifo", "priority_interleave"], default="fifo")
    g.add_argument("--crc-bits", type=int, choices=[16, 32], default=32)
    g.add_argument("--rto-s", type=float, default=2.0, help="sender EOF re-send timeout")
    g.add_argument("--nak-timeout-s", type=float, default=2.0, help="receiver re-NAK timeout")
    g.add_argument("--max-retries", type=int, default=8)
    g.add_argument(
        "--fec",
        type=int,
        nargs=2,
        metavar=("K", "M"),
        default=(0, 0),
        help="Reed-Solomon erasure FEC: M parity frames per K data frames",
    )
    g.add_argument("--key-file", type=Path, help="pre-shared key for HMAC-SHA256 frame tags")
    g.add_argument("--tag-bytes", type=int, default=8)


def config_from_args(args: argparse.Namespace) -> LinkConfig:
    """Raises: ValueError (naming the option) for a bad value or an unreadable key file."""
    key = None
    if args.key_file is not None:
        try:
            key = args.key_file.read_bytes()
        except OSError as exc:
            raise ValueError(f"--key-file {args.key_file}: {exc.strerror}") from None
    return LinkConfig(
        mtu_bytes=args.mtu,
        arq=args.arq,
        policy=args.policy,
        crc_bits=args.crc_bits,
        rto_s=args.rto_s,
        nak_timeout_s=args.nak_timeout_s,
        max_retries=args.max_retries,
        fec_k=args.fec[0],
        fec_m=args.fec[1],
        auth_key=key,
        tag_bytes=args.tag_bytes,
    )
