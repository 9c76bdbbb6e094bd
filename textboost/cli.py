"""Command-line helpers the project's CLIs share: one-line argparse errors, text made safe
for a terminal, the codec and capture options, and the link and budget options, which are
built from the one link model and the one budget model (:mod:`textboost.settings`) that the
field file and the scenario file use too: ``python -m uplink`` and ``python -m downlink``
must be started with equal link options.
"""

from __future__ import annotations

import argparse
import sys
import time
import unicodedata
from pathlib import Path
from typing import NoReturn

from textboost.settings.budget import add_budget_arguments, policy_from_args
from textboost.settings.link import add_link_arguments
from textboost.settings.link import link_from_args as config_from_args

__all__ = [
    "OneLineArgumentParser",
    "SearchProgress",
    "add_budget_arguments",
    "add_capture_arguments",
    "add_codec_arguments",
    "add_link_arguments",
    "add_version",
    "config_from_args",
    "epoch_from_args",
    "fail",
    "loader_from_args",
    "meta_from_args",
    "policy_from_args",
    "printable",
    "prog_name",
]

USAGE_ERROR = 2


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
    g.add_argument(
        "--no-name", action="store_true",
        help="do not carry the file's name (default: its first 32 bytes, 2 + length bytes)",
    )  # fmt: skip


def meta_from_args(args: argparse.Namespace, image_path: str | Path):
    """The :class:`~textboost.capture.CaptureMeta` for one image (None: none to send).

    Raises:
        textboost.capture.MetaError: a bad value, naming the field.
    """
    from textboost.capture import capture_for, with_name

    if args.no_meta:
        return None
    overrides = {
        "time": args.time, "lat": args.lat, "lon": args.lon, "alt_m": args.alt,
        "heading_deg": args.heading, "camera": args.camera,
    }  # fmt: skip
    meta = capture_for(image_path, overrides)
    return meta if args.no_name else with_name(meta, image_path)


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
    (:func:`loader_from_args` makes its :class:`~textboost.pipeline.loader.PipelineLoader`)."""
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
    """The :class:`~textboost.pipeline.loader.PipelineLoader` of :func:`add_codec_arguments`'
    options; with ``check`` it fails now (one line: the missing runtime, model file or
    exported graphs) rather than at the first image.

    Raises: ValueError, FileNotFoundError, RuntimeError (see :meth:`PipelineLoader.check`)."""
    from textboost.pipeline.loader import PipelineLoader

    loader = PipelineLoader(
        args.model, backend=args.backend, device=args.device, onnx_dir=args.onnx_dir,
        fusion=fusion,
    )  # fmt: skip
    if check:
        loader.check()
    return loader


def epoch_from_args(args: argparse.Namespace) -> int:
    """``--epoch``, or the Unix time in seconds (fits 32 bits until 2106).

    Raises: ValueError naming the option for a value outside 0..2^32-1."""
    epoch = int(time.time()) if args.epoch is None else args.epoch
    if not 0 <= epoch <= 0xFFFF_FFFF:
        raise ValueError(f"--epoch {epoch}: expected 0..4294967295")
    return epoch
