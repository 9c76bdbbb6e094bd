"""Command line: run a scenario, or sweep one of its parameters.

Exit codes: 0 done; 2 invalid scenario or arguments (one line naming file, field, value
and what was expected); 1 anything else the simulator could not do (for example no codec).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from link_sim.codec_service import CodecService, default_cache_dir
from link_sim.runner import parse_params, run_scenario, run_sweep, write_outputs
from link_sim.scenario import ScenarioError, load_scenario
from textboost.cli import add_version, prog_name

__all__ = ["main"]

def _common(p: argparse.ArgumentParser) -> None:
    add_version(p)
    p.add_argument("scenario", help="scenario YAML file (see scenarios/)")
    p.add_argument("--runs", type=int, default=None,
                   help="Monte Carlo runs (default: the scenario's 'runs')")
    p.add_argument("--cache", type=Path, default=None,
                   help=f"encode/decode cache folder (default {default_cache_dir()}: "
                        "$TEXTBOOST_CACHE, else $XDG_CACHE_HOME/textboost, else "
                        "~/.cache/textboost, then link_sim/)")
    p.add_argument("--synthetic", action="store_true",
                   help="random .tbx-shaped payloads instead of the codec: the link alone, "
                        "no quality figures")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default out/<scenario-name>/)")


def _parser_run() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog_name("link_sim", "link-sim"),
        description="Predict what a link delivers, at what quality and how late. "
                    "'python -m link_sim sweep --help' for parameter sweeps; 'proxy --help' "
                    "for a real-time UDP relay; 'replay --help' to simulate a trial's event log.",
    )
    _common(p)
    p.add_argument("--json", action="store_true", help="print the JSON report on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _parser_sweep() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog_name("link_sim", "link-sim") + " sweep",
        description="Run a grid of parameter values in parallel and plot the swept figure.",
    )
    _common(p)
    p.add_argument("--param", action="append", required=True, metavar="PATH=V1,V2,...",
                   help="a dotted scenario path and its values, e.g. "
                        "link.forward.rate_bps=2400,9600 (repeat for a grid; the first is "
                        "plotted)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="parallel worker processes")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run the points on a Ray cluster (needs the 'cluster' extra)")
    p.add_argument("--json", action="store_true", help="print the sweep results as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # files and pipes get the whole table, not 80 columns
    err = Console(stderr=True)
    try:
        if argv and argv[0] in ("proxy", "replay"):  # rehearsal and calibration tools
            from link_sim import proxy, replay

            return (proxy if argv[0] == "proxy" else replay).main(argv[1:])
        if argv and argv[0] == "sweep":
            return _sweep(_defaults(_parser_sweep().parse_args(argv[1:])), console)
        return _run(_defaults(_parser_run().parse_args(argv)), console)
    except ScenarioError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2


def _defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Defaults read from the environment when the command runs (the cache folder)."""
    if args.cache is None:
        args.cache = default_cache_dir()
    return args


def _codec(args: argparse.Namespace) -> CodecService:
    codec = CodecService(args.cache, synthetic=args.synthetic)
    if not args.synthetic:
        try:
            codec.codec  # noqa: B018 - loads the codec now, so a missing one fails early
        except Exception as exc:
            raise SystemExit(
                f"error: the textboost codec is not usable here ({type(exc).__name__}: {exc}); "
                "run with --synthetic to study the link alone"
            ) from None
    return codec


def _run(args: argparse.Namespace, console: Console) -> int:
    scenario = load_scenario(args.scenario)
    runs = args.runs or scenario.runs
    if runs < 1:
        raise ScenarioError(f"--runs {runs}: expected at least 1")
    status = _status(not args.no_progress)
    with status("loading the codec"):
        codec = _codec(args)
    t0 = time.perf_counter()
    results = run_scenario(scenario, codec, runs, progress=not args.no_progress)
    wall_s = time.perf_counter() - t0
    out_dir = args.out or Path("out") / scenario.name
    with status(f"writing the report to {out_dir}"):
        report, files = write_outputs(results, args.scenario, out_dir)
    if args.json:
        print(json.dumps(report, indent=1))
        console = Console(stderr=True)  # stdout stays one JSON document
    else:
        _print_report(report, console)
    console.print(
        f"simulated {runs} × {scenario.duration_s:g} s in {wall_s:.1f} s wall "
        f"({codec.encodes} encodes, {codec.decodes} decodes not in the cache)",
        highlight=False,
    )
    console.print(f"report: {files['html']}", highlight=False)
    console.print(
        "files:  " + ", ".join(str(p) for k, p in files.items() if k != "html"), highlight=False
    )
    return 0


def _status(enabled: bool):
    """A spinner on stderr while a slow step runs, on a terminal only (the run's bar is
    tqdm's, link_sim.runner)."""
    err = Console(stderr=True)
    if enabled and err.is_terminal:
        return lambda what: err.status(what, spinner="line")
    return lambda what: contextlib.nullcontext()


def _cell(v: Any, nd: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _print_report(report: dict[str, Any], console: Console) -> None:
    console.print(
        f"[bold]{report['scenario']}[/bold]: {report['description']}\n"
        f"codec: {report['codec']}; ARQ {report['arq']}; text path {report['text_path']}; "
        f"{report['runs']} run(s), seed {report['seed']}",
        highlight=False,
    )
    for note in report["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    t = Table(title="images (run 0)", header_style="bold")
    for col in ("#", "image", "status", "capture s", "first byte s", "groups", "delivered s",
                "decoded s", "latency s", "enc/queue/air/retx/dec s", "codec bpp",
                "on-air bpp", "PSNR dB"):
        t.add_column(col, justify="left" if col in ("image", "status") else "right")
    for r in report["images"]:
        split = "/".join(
            _cell(r.get(f"{k}_s"))
            for k in ("encode", "queue", "air", "retransmission", "decode")
        ) if r.get("air_s") is not None else "–"
        t.add_row(
            str(r["index"]), r["image"].rsplit(".", 1)[0], r["status"], _cell(r["capture_s"]),
            _cell(r["first_byte_s"]), f"{r['decoded_groups']}/{r['n_groups']}",
            _cell(r["delivered_s"]), _cell(r["decoded_s"]), _cell(r["latency_s"]), split,
            _cell(r["codec_bpp"], 4), _cell(r["on_air_bpp"], 4), _cell(r["psnr_db"], 2),
        )
    console.print(t)
    _print_text(report, console)
    s = report["summary"]
    ci = report["runs"] > 1
    st = Table(title="summary" + (" (mean ± 95 % CI over runs)" if ci else ""),
               header_style="bold")
    st.add_column("figure", justify="left")
    st.add_column("value", justify="right")
    for key in ("images_captured", "images_delivered", "images_decoded", "images_dropped",
                "delivered_fraction", "latency_mean_s", "latency_p50_s", "latency_p95_s",
                "encode_mean_s", "queue_mean_s", "air_mean_s", "retransmission_mean_s",
                "decode_mean_s", "text_latency_mean_s", "text_latency_p50_s",
                "first_image_latency_p50_s", "image_latency_p50_s", "text_bytes_mean",
                "words_delivered", "text_det_f1", "text_e2e_f1", "text_e2e_f1_original",
                "text_e2e_f1_words",
                "codec_bpp_mean", "on_air_bpp_mean", "psnr_mean_db", "protocol_efficiency",
                "frame_loss_rate", "utilisation", "reverse_utilisation", "capacity_bps",
                "delivered_bps"):
        m = s[key]
        nd = 4 if "bpp" in key or "f1" in key or key in (
            "delivered_fraction", "protocol_efficiency", "frame_loss_rate", "utilisation",
            "reverse_utilisation") else 2
        value = _cell(m["mean"], nd)
        if ci and m["ci95"] is not None:
            value += f" ± {_cell(m['ci95'], nd)}"
        st.add_row(key, value)
    console.print(st)


def _print_text(report: dict[str, Any], console: Console) -> None:
    """Per image: when the words, the first image and the whole image reached the ground,
    the words, and the spotter's F1 on the decoded image (where there is ground truth)."""
    rows = report["images"]
    if not any(r["text_bytes"] or r["det_f1"] is not None for r in rows):
        return
    t = Table(title="text (run 0): seconds after capture", header_style="bold")
    for col in ("#", "image", "text B", "to 1st word s", "to all words s", "to 1st image s",
                "to image s",
                "DET F1", "E2E F1", "E2E F1 orig", "E2E F1 words", "words delivered"):
        t.add_column(col, justify="left" if col in ("image", "words delivered") else "right",
                     overflow="fold")
    for r in rows:
        words = r["text_strings"]
        t.add_row(
            str(r["index"]), r["image"].rsplit(".", 1)[0], _cell(r["text_bytes"]),
            _cell(r["time_to_first_word_s"]), _cell(r["time_to_text_s"]),
            _cell(r["time_to_first_image_s"]),
            _cell(r["time_to_image_s"]), _cell(r["det_f1"], 2), _cell(r["e2e_f1"], 2),
            _cell(r["e2e_f1_original"], 2), _cell(r["e2e_f1_words"], 2),
            "–" if words is None else (" | ".join(words) or "(none)"),
        )
    console.print(t)


def _sweep(args: argparse.Namespace, console: Console) -> int:
    params = parse_params(args.param)
    scenario = load_scenario(args.scenario)
    runs = args.runs or scenario.runs
    codec = _codec(args)  # the real one is loaded now, so a missing one fails early
    out_dir = args.out or Path("out") / scenario.name
    points, plot = run_sweep(
        args.scenario, params, runs=runs, cache_dir=args.cache, synthetic=args.synthetic,
        workers=args.workers, ray_address=args.ray, out_dir=out_dir, codec=codec,
    )
    (out_dir / "sweep.json").write_text(json.dumps(points, indent=1) + "\n")
    if args.json:
        print(json.dumps(points, indent=1))
        console = Console(stderr=True)
    else:
        t = Table(title=f"sweep ({runs} run(s) per point)", header_style="bold")
        for col in ("point", "delivered", "latency mean s", "p95 s", "on-air bpp", "PSNR dB"):
            t.add_column(col, justify="right")
        for p in points:
            s = p["summary"]
            t.add_row(
                ", ".join(f"{k}={v}" for k, v in p["overrides"].items()),
                _cell(s["delivered_fraction"]["mean"], 3), _cell(s["latency_mean_s"]["mean"]),
                _cell(s["latency_p95_s"]["mean"]), _cell(s["on_air_bpp_mean"]["mean"], 4),
                _cell(s["psnr_mean_db"]["mean"], 2),
            )
        console.print(t)
    console.print(
        f"{codec.encodes} encodes on the driver (each distinct stream once, the rest from the "
        f"cache), {sum(p['encodes'] for p in points)} on workers", highlight=False,
    )  # fmt: skip
    console.print(f"sweep plot: {plot}\nsweep data: {out_dir / 'sweep.json'}", highlight=False)
    return 0
