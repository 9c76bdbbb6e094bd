"""Command-line helpers the project's CLIs share: one-line argparse errors, text made safe
for a terminal, and the link protocol options of the field CLIs (``python -m uplink`` and
``python -m downlink`` must be started with equal link options). Defaults come from
:class:`LinkConfig`, so the CLIs, the scenario schema and the protocol agree.
"""

from __future__ import annotations

import argparse
import sys
import time
import unicodedata
from pathlib import Path
from typing import NoReturn

from textboost.protocol.config import LinkConfig

__all__ = [
    "OneLineArgumentParser",
    "SearchProgress",
    "add_capture_arguments",
    "add_codec_arguments",
    "add_link_arguments",
    "add_version",
    "config_from_args",
    "epoch_from_args",
    "fail",
    "loader_from_args",
    "meta_from_args",
    "printable",
    "prog_name",
]

USAGE_ERROR = 2
# options whose destination is the LinkConfig field of the same name
_SAME_NAMES = ("mtu_bytes", "arq", "policy", "crc_bits", "rto_s", "nak_timeout_s",
               "max_retries", "tag_bytes", "key_id", "max_bundle_bytes")


class OneLineArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (``prog: error: ...``), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def prog_name(module: str, script: str) -> str:
    """The name a CLI was started by, for its usage and ``--version`` lines: the console
    script (``script``, see ``[project.scripts]``) or ``python -m module``."""
    return script if Path(sys.argv[0]).name == script else f"python -m {module}"


def add_version(parser: argparse.ArgumentParser) -> None:
    """``--version``: the installed package's version (``textboost.__version__``)."""
    from textboost import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")


def fail(prog: str, message: str) -> NoReturn:
    """Print a one-line error naming the bad input (:func:`printable`) and exit with code 2."""
    sys.stderr.write(f"{prog}: error: {printable(message)}\n")
    raise SystemExit(USAGE_ERROR)


# control (C0, DEL, C1), format (bidi overrides and isolates, zero-width), surrogate, private
# use, unassigned, line and paragraph separator
_UNSAFE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def printable(text: str) -> str:
    """``text`` safe to print on an operator's terminal: words carried over the link (and
    anything else from outside) may hold ESC or BEL sequences that retitle, recolour or
    rewrite the screen, C1 controls, bidi overrides that reorder what is shown, or line
    separators; those characters become Python-style escapes (``\\x1b``, ``\\u202e``) and
    everything else, non-Latin scripts included, is left as it is."""
    if text.isprintable():  # the common case: nothing to escape
        return text
    return "".join(_escape(c) if unicodedata.category(c) in _UNSAFE else c for c in text)


def _escape(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def add_capture_arguments(parser: argparse.ArgumentParser) -> None:
    """The capture metadata a sender puts in each header (``textboost.capture``): read
    from the image's EXIF and its sidecar ``IMAGE.json``; these options override both."""
    g = parser.add_argument_group("capture metadata (default: EXIF, then IMAGE.json beside it)")
    g.add_argument("--time", help="capture time, ISO 8601 (UTC unless a zone is given)")
    g.add_argument("--lat", type=float, help="latitude, degrees north (WGS 84)")
    g.add_argument("--lon", type=float, help="longitude, degrees east (WGS 84)")
    g.add_argument("--alt", type=float, help="altitude, metres above mean sea level")
    g.add_argument("--heading", type=float, help="camera heading, degrees true")
    g.add_argument("--camera", type=int, help="camera id, 0..255")
    g.add_argument(
        "--no-meta", action="store_true", help="send no capture metadata (saves up to 14 bytes)"
    )


def meta_from_args(args: argparse.Namespace, image_path: str | Path):
    """The :class:`~textboost.capture.CaptureMeta` for one image (None: none to send).

    Raises:
        textboost.capture.MetaError: a bad value, naming the field.
    """
    from textboost.capture import capture_for

    if args.no_meta:
        return None
    overrides = {
        "time": args.time, "lat": args.lat, "lon": args.lon, "alt_m": args.alt,
        "heading_deg": args.heading, "camera": args.camera,
    }  # fmt: skip
    return capture_for(image_path, overrides)


class SearchProgress:
    """Draws the budget search's steps (:class:`~textboost.codec.budget.SearchStep`) on
    stderr: one line redrawn in place on a terminal, a line per step into a file or pipe
    (``--progress``). ``enabled(flag)`` is the CLIs' rule: a terminal, or asked for.
    The library never prints; it calls ``progress=`` with each step."""

    def __init__(self, stream=None, prefix: str = "") -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.prefix = prefix
        self.t0 = time.perf_counter()
        self.drawn = False

    @staticmethod
    def enabled(flag: bool, stream=None) -> bool:
        return flag or (stream or sys.stderr).isatty()

    def __call__(self, step) -> None:
        w, h = step.coded_size
        at = f"{self.prefix}budget {step.budget} B, {w}×{h}"
        if step.kind == "analyse":
            text = f"{at}: analysing"
        elif step.kind == "spot":
            text = f"{at}: spotting words, then analysing"
        elif step.kind == "encode":
            cut = "" if step.groups is None else f", {step.groups} y groups"
            verdict = "fits" if step.fits else "over"
            text = f"{at}: rate {step.rate:.3f} → {step.n_bytes} B ({verdict}{cut})"
        elif step.kind == "refine":
            text = f"{at}: refining at rate {step.rate:.3f}, {step.iterations} iterations"
        else:
            text = f"{at}: decoded, PSNR {step.psnr_db:.2f} dB"
        text += f"  [{time.perf_counter() - self.t0:.1f} s]"
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        """Clear the terminal line (the result is printed on stdout)."""
        if self.tty and self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self.drawn = False


def add_effort_argument(parser: argparse.ArgumentParser) -> None:
    """``--effort N``: encoder-side latent refinement (the same streams' decoder)."""
    from textboost.codec.refine import EFFORT_ITERATIONS, MAX_EFFORT

    iters = ", ".join(f"{e}: {n}" for e, n in enumerate(EFFORT_ITERATIONS) if e)
    parser.add_argument(
        "--effort", type=int, default=0, choices=range(MAX_EFFORT + 1), metavar="N",
        help=f"refine the latents before coding (0 = none, the default; iterations {iters}); "
        "more encoder time, decoded by the same decoder; needs torch",
    )  # fmt: skip


def add_codec_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--backend``, ``--onnx-dir``, ``--device``: where a node's codec runs
    (:func:`loader_from_args` makes its :class:`~textboost.codec.loader.CodecLoader`)."""
    g = parser.add_argument_group("codec (where the transforms run)")
    g.add_argument("--model", type=Path, help="model file (default: the shipped model)")
    g.add_argument(
        "--backend",
        choices=["torch", "onnxruntime", "tensorrt"],
        default="torch",
        help="torch (reference), onnxruntime or tensorrt (the graphs of `python -m export "
        "onnx`; never import torch); default torch",
    )
    g.add_argument(
        "--onnx-dir",
        type=Path,
        help="folder of `python -m export onnx` (default: the model id's cache folder)",
    )
    g.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")


def loader_from_args(args: argparse.Namespace, *, fusion: bool | None = None, check: bool = True):
    """The :class:`~textboost.codec.loader.CodecLoader` of :func:`add_codec_arguments`'
    options; with ``check`` it fails now (one line: the missing runtime, model file or
    exported graphs) rather than at the first image.

    Raises: ValueError, FileNotFoundError, RuntimeError (see :meth:`CodecLoader.check`)."""
    from textboost.codec.loader import CodecLoader

    loader = CodecLoader(
        args.model, backend=args.backend, device=args.device, onnx_dir=args.onnx_dir,
        fusion=fusion,
    )  # fmt: skip
    if check:
        loader.check()
    return loader


def add_link_arguments(parser: argparse.ArgumentParser) -> None:
    d = LinkConfig()
    g = parser.add_argument_group("link protocol (must match on both ends)")
    g.add_argument("--mtu", dest="mtu_bytes", type=int, default=d.mtu_bytes, metavar="BYTES",
                   help=f"largest frame ({d.mtu_bytes})")
    g.add_argument("--arq", choices=["immediate", "deferred", "none"], default=d.arq)
    g.add_argument("--policy", choices=["fifo", "priority_interleave"], default=d.policy)
    g.add_argument("--crc-bits", type=int, choices=[16, 32], default=d.crc_bits)
    g.add_argument("--rto-s", type=float, default=d.rto_s,
                   help=f"sender EOF re-send timeout ({d.rto_s:g})")
    g.add_argument("--nak-timeout-s", type=float, default=d.nak_timeout_s,
                   help=f"receiver re-NAK timeout ({d.nak_timeout_s:g})")
    g.add_argument("--max-retries", type=int, default=d.max_retries)
    g.add_argument(
        "--fec",
        type=int,
        nargs=2,
        metavar=("K", "M"),
        default=(d.fec_k, d.fec_m),
        help="Reed-Solomon erasure FEC: M parity frames per K data frames",
    )
    g.add_argument("--key-file", type=Path, help="pre-shared key for HMAC-SHA256 frame tags")
    g.add_argument("--tag-bytes", type=int, default=d.tag_bytes)
    g.add_argument("--key-id", type=int, default=d.key_id,
                   help="id of the pre-shared key, 0..255 (a new key gets a new id)")
    g.add_argument("--max-bundle-bytes", type=int, default=d.max_bundle_bytes,
                   help=f"largest image stream either end accepts ({d.max_bundle_bytes})")
    g.add_argument("--epoch", type=int, default=None,
                   help="this end's session number, never repeated under one key (default: "
                        "the time in seconds; pass a persisted counter if the clock can go back "
                        "or the node may restart within a second)")


def config_from_args(args: argparse.Namespace) -> LinkConfig:
    """Raises: ValueError (naming the option) for a bad value or an unreadable key file."""
    key = None
    if args.key_file is not None:
        try:
            key = args.key_file.read_bytes()
        except OSError as exc:
            raise ValueError(f"--key-file {args.key_file}: {exc.strerror}") from None
    same = {name: getattr(args, name) for name in _SAME_NAMES}
    return LinkConfig(**same, fec_k=args.fec[0], fec_m=args.fec[1], auth_key=key)


def epoch_from_args(args: argparse.Namespace) -> int:
    """``--epoch``, or the Unix time in seconds (fits 32 bits until 2106).

    Raises: ValueError naming the option for a value outside 0..2^32-1."""
    epoch = int(time.time()) if args.epoch is None else args.epoch
    if not 0 <= epoch <= 0xFFFF_FFFF:
        raise ValueError(f"--epoch {epoch}: expected 0..4294967295")
    return epoch
