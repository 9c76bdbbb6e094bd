"""`python -m textboost.eval rd|report|strip|text ...`: RD, its report, strips, text fidelity.

Bad arguments exit with status 2 and one line on stderr naming the problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from textboost.cli import USAGE_ERROR, OneLineArgumentParser, add_version
from textboost.eval.baselines import BASELINE_NAMES

__all__ = ["main"]


class UsageError(ValueError):
    """A command-line value that is wrong; reported in one line with exit status 2."""


def _name_list(text: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    """A comma list of distinct names from ``allowed`` (argparse type errors name the bad one)."""
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"empty {what} list")
    for n in names:
        if n not in allowed:
            raise argparse.ArgumentTypeError(
                f'unknown {what} "{n}" (choose from {",".join(allowed)})'
            )
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"{what} listed twice in {text!r}")
    return names


def _codecs(text: str) -> tuple[str, ...]:
    from textboost.eval.rd import ALL_CODECS

    return _name_list(text, ALL_CODECS, "codec")


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (0 < v <= 24):
        raise argparse.ArgumentTypeError(f"bpp must be in (0, 24], got {text}")
    return v


def _bpp_list(text: str) -> tuple[float, ...]:
    vals = tuple(_positive_float(s) for s in text.split(",") if s.strip())
    if not vals:
        raise argparse.ArgumentTypeError("empty bpp list")
    if len(set(vals)) != len(vals):
        raise argparse.ArgumentTypeError(f"bpp listed twice in {text!r}")
    return tuple(sorted(vals))


def _divisors(text: str) -> tuple[str, tuple[float, ...]]:
    codec, sep, rest = text.partition("=")
    if not sep or codec not in BASELINE_NAMES:
        raise argparse.ArgumentTypeError(
            f"expected CODEC=D1,D2,... with CODEC one of {','.join(BASELINE_NAMES)}, got {text!r}"
        )
    try:
        ds = tuple(float(s) for s in rest.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad divisor list in {text!r}") from None
    if not ds or any(d < 1 for d in ds):
        raise argparse.ArgumentTypeError(f"divisors must be >= 1 in {text!r}")
    return codec, ds


def _crop(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y,W,H integers, got {text!r}") from None
    return x, y, w, h


def _build_parser() -> argparse.ArgumentParser:
    from textboost.eval.budget import DOWNSCALE_DIVISORS
    from textboost.eval.rd import ALL_CODECS, DEFAULT_BPP, MAX_WORKERS

    p = OneLineArgumentParser(prog="python -m textboost.eval", description=__doc__.splitlines()[0])
    add_version(p)
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineArgumentParser)

    rd = sub.add_parser(
        "rd",
        help="rate–distortion evaluation at per-image byte budgets",
        description="Each codec at floor(bpp·W·H/8) bytes per image; baselines "
        "searched over quality × downscale, best PSNR that fits.",
    )
    rd.add_argument("--dataset", type=Path, required=True, help="folder of .png images")
    rd.add_argument("--out", type=Path, required=True, help="result JSON to write")
    rd.add_argument(
        "--codecs",
        type=_codecs,
        default=ALL_CODECS,
        help=f"comma list from {','.join(ALL_CODECS)} (default: all)",
    )
    rd.add_argument(
        "--bpp",
        type=_bpp_list,
        default=DEFAULT_BPP,
        help="comma list of target bpp (default: " + ",".join(map(str, DEFAULT_BPP)) + ")",
    )
    rd.add_argument(
        "--downscale",
        type=_divisors,
        action="append",
        default=[],
        metavar="CODEC=D1,D2,...",
        help="downscale divisors for one baseline (default "
        + ",".join(f"{d:g}" for d in DOWNSCALE_DIVISORS)
        + "); repeatable",
    )
    rd.add_argument(
        "--merge",
        action="store_true",
        help="add/replace these codecs in an existing --out file instead of overwriting",
    )
    rd.add_argument("--plot", type=Path, default=None, help="PNG plot (default: --out with .png)")
    rd.add_argument(
        "--workers",
        type=int,
        default=MAX_WORKERS,
        help=f"worker processes, 1..{MAX_WORKERS} (default {MAX_WORKERS})",
    )
    rd.add_argument("--limit", type=int, default=None, help="only the first N images (by name)")
    rd.add_argument("--json", action="store_true", help="print a machine-readable summary")

    rp = sub.add_parser(
        "report",
        help="tables and plot from an existing result JSON",
        description="Re-print the tables and redraw the plot of an rd result.",
    )
    rp.add_argument("--in", dest="inp", type=Path, required=True, help="result JSON of rd")
    rp.add_argument("--plot", type=Path, default=None, help="PNG plot to (re)draw")
    rp.add_argument("--json", action="store_true", help="print a machine-readable summary")
    rp.add_argument("--markdown", action="store_true", help="print a Markdown table")

    st = sub.add_parser(
        "strip",
        help="crop of one image: original and each codec at one bpp",
        description="Side-by-side crops of one image as decoded by each codec "
        "at the same byte budget.",
    )
    st.add_argument("--image", type=Path, required=True, help="source image (PNG)")
    st.add_argument("--out", type=Path, required=True, help="strip PNG to write")
    st.add_argument(
        "--codecs",
        type=_codecs,
        default=("jpeg", "avif", "ours"),
        help="comma list of codecs (default: jpeg,avif,ours)",
    )
    st.add_argument("--bpp", type=_positive_float, default=0.03, help="target bpp (default 0.03)")
    st.add_argument(
        "--crop",
        type=_crop,
        default=None,
        metavar="X,Y,W,H",
        help="region in image pixels (default: central 192x192)",
    )
    st.add_argument("--zoom", type=int, default=2, help="integer magnification (default 2)")
    st.add_argument("--json", action="store_true", help="print panel figures as JSON")
    _add_text_parser(sub)
    sy = sub.add_parser(
        "synth",
        help="write a synthetic scene-text set (images + ICDAR gt) on given photos",
        description="One image per photo with the project's scene-text generator and its "
        "ICDAR 2015 ground truth (gt_<name>.txt); deterministic under --seed.",
    )
    sy.add_argument("--photos", type=Path, required=True, help="folder of photos (PNG/JPEG)")
    sy.add_argument("--out", type=Path, required=True, help="output folder")
    sy.add_argument("--seed", type=int, default=20261203)
    return p


def _entrants(text: str) -> tuple[str, ...]:
    from textboost.eval.text_entrants import ENTRANTS

    return _name_list(text, ENTRANTS, "entrant")


def _divisor_list(text: str) -> tuple[float, ...]:
    try:
        ds = tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad divisor list {text!r}") from None
    if not ds or any(d < 1 for d in ds):
        raise argparse.ArgumentTypeError(f"divisors must be >= 1, got {text!r}")
    return ds


def _add_text_parser(sub) -> None:
    from textboost.eval.budget import DOWNSCALE_DIVISORS
    from textboost.eval.text_entrants import ENTRANTS, MAX_WORKERS
    from textboost.eval.text_eval import DEFAULT_BPP, DEFAULT_ENTRANTS

    tx = sub.add_parser(
        "text",
        help="text fidelity: DET/E2E F1 and plate reads of decoded images at byte budgets",
        description="Original, AVIF at equal bytes, the codec alone and TextBoost (with the "
        "shipped, the paper's or the word fusion block) at floor(bpp·W·H/8) bytes per image "
        "(text section included); the spotter reads each decoded image and is scored "
        "against the ground truth (ICDAR 2015 protocol).",
    )
    tx.add_argument(
        "--dataset",
        type=Path,
        action="append",
        required=True,
        help="folder of images with gt_<image>.txt (ICDAR 2015) or <image>.txt (OpenALPR); "
        "repeatable",
    )
    tx.add_argument("--out", type=Path, required=True, help="result JSON to write")
    tx.add_argument(
        "--bpp",
        type=_bpp_list,
        default=DEFAULT_BPP,
        help="comma list of target bpp (default: " + ",".join(map(str, DEFAULT_BPP)) + ")",
    )
    tx.add_argument(
        "--entrants",
        type=_entrants,
        default=DEFAULT_ENTRANTS,
        help=f"comma list from {','.join(ENTRANTS)} (default: {','.join(DEFAULT_ENTRANTS)})",
    )
    tx.add_argument(
        "--paper-fusion",
        type=Path,
        default=None,
        help="the paper's block for entrant 'paper' (default: <model>.paper-fusion.safetensors "
        "in the zoo, else the shipped file if it is that kind)",
    )
    tx.add_argument(
        "--word-fusion",
        type=Path,
        default=None,
        help="the word block for entrant 'words' (default: the shipped fusion file if it is "
        "that kind; e.g. from python -m textboost.train export-fusion --run ... --best)",
    )
    tx.add_argument(
        "--avif-downscale",
        type=_divisor_list,
        default=DOWNSCALE_DIVISORS,
        metavar="D1,D2,...",
        help="AVIF downscale divisors (default "
        + ",".join(f"{d:g}" for d in DOWNSCALE_DIVISORS)
        + ")",
    )
    tx.add_argument("--limit", type=int, default=None, help="only the first N images of each set")
    tx.add_argument(
        "--grid", type=Path, default=None, help="crop-grid PNG (default: --out with .png)"
    )
    tx.add_argument(
        "--grid-bpp",
        type=_positive_float,
        default=None,
        help="target of the crop grid, one of --bpp (default: the one closest to 0.03)",
    )
    tx.add_argument("--grid-rows", type=int, default=8, help="rows of the crop grid (default 8)")
    tx.add_argument(
        "--workers",
        type=int,
        default=1,
        help=f"worker processes, 1..{MAX_WORKERS} (default 1)",
    )
    tx.add_argument(
        "--merge",
        action="store_true",
        help="add/replace these entrants in an existing --out file (same images and targets)",
    )
    tx.add_argument("--json", action="store_true", help="print the summaries as JSON")


def _run_text(args: argparse.Namespace) -> int:
    from rich.console import Console
    from tqdm import tqdm

    from textboost.eval.text_eval import (
        TRAINING_SETS,
        TextEvalConfig,
        crops_from_doc,
        keep_grid_rows,
        merge_results,
        pick_rows,
        print_tables,
        render_grid,
        run_text_eval,
        write_json,
    )
    from textboost.scenetext.gt import load_dataset

    for d in args.dataset:
        if not d.is_dir():
            raise UsageError(f"--dataset: folder not found: {d}")
        if d.name in TRAINING_SETS:
            print(
                f"warning: {d.name} is reserved for stage-2 training; its figures are not a "
                "held-out evaluation",
                file=sys.stderr,
            )
        try:
            load_dataset(d, args.limit)
        except (FileNotFoundError, ValueError) as exc:
            raise UsageError(f"--dataset: {exc}") from None
    if len({d.name for d in args.dataset}) != len(args.dataset):
        raise UsageError("--dataset: two folders of the same name")
    for flag, path in (("--paper-fusion", args.paper_fusion), ("--word-fusion", args.word_fusion)):
        if path is not None and not path.is_file():
            raise UsageError(f"{flag}: file not found: {path}")
    if args.out.suffix != ".json":
        raise UsageError(f"--out must end in .json, got {args.out}")
    if not args.out.parent.is_dir():
        raise UsageError(f"--out: folder not found: {args.out.parent}")
    grid_path = args.grid or args.out.with_suffix(".png")
    if grid_path.suffix.lower() != ".png":
        raise UsageError(f"--grid must end in .png, got {grid_path}")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {args.limit}")
    if args.grid_rows < 1:
        raise UsageError(f"--grid-rows must be >= 1, got {args.grid_rows}")
    try:
        config = TextEvalConfig(
            entrants=args.entrants,
            bpp_targets=args.bpp,
            avif_divisors=args.avif_downscale,
            grid_bpp=args.grid_bpp,
            workers=args.workers,
            paper_fusion=args.paper_fusion,
            word_fusion=args.word_fusion,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    old = None
    if args.merge and args.out.exists():
        try:
            old = json.loads(args.out.read_text())
        except json.JSONDecodeError as exc:
            raise UsageError(f"--merge: {args.out} is not valid JSON ({exc})") from None
    with tqdm(total=None, desc="text", unit="image", file=sys.stderr) as bar:

        def progress(done: int, total: int, message: str) -> None:
            bar.total = total
            bar.set_postfix_str(message, refresh=False)
            bar.update(done - bar.n)

        doc = run_text_eval(args.dataset, config, args.limit, progress)
    if old is not None:
        try:
            doc = merge_results(old, doc)
        except ValueError as exc:
            raise UsageError(f"--merge: {exc}") from None
    doc = keep_grid_rows(doc, args.grid_rows)  # pixels only of the crops the grid shows
    write_json(doc, args.out)
    entrants = list(doc["entrants"])
    rows = pick_rows(crops_from_doc(doc, entrants), args.grid_rows)
    render_grid(rows, entrants, doc["grid_bpp"]).save(grid_path)
    if args.json:
        summary = {n: d["summary"] for n, d in doc["datasets"].items()}
        print(json.dumps({"schema": doc["schema"], "datasets": summary}, indent=1))
    else:
        print_tables(doc)
        Console().print(f"wrote {args.out} and {grid_path}")
    return 0


def _run_rd(args: argparse.Namespace) -> int:
    from rich.console import Console
    from tqdm import tqdm

    from textboost.eval.rd import (
        RdConfig,
        check_image,
        list_images,
        merge_results,
        run_rd,
        summarise,
        write_json,
    )
    from textboost.eval.report import plot_rd, print_tables

    if not args.dataset.is_dir():
        raise UsageError(f"--dataset: folder not found: {args.dataset}")
    if args.out.suffix != ".json":
        raise UsageError(f"--out must end in .json, got {args.out}")
    if not args.out.parent.is_dir():
        raise UsageError(f"--out: folder not found: {args.out.parent}")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {args.limit}")
    try:
        for path in list_images(args.dataset)[: args.limit]:
            check_image(path)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(f"--dataset: {exc}") from None
    old = None
    if args.merge and args.out.exists():
        try:
            old = json.loads(args.out.read_text())
        except json.JSONDecodeError as exc:
            raise UsageError(f"--merge: {args.out} is not valid JSON ({exc})") from None
    try:
        config = RdConfig(
            codecs=args.codecs,
            bpp_targets=args.bpp,
            divisors=dict(args.downscale),
            workers=args.workers,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with tqdm(total=None, desc="rd", unit="job", file=sys.stderr) as bar:

        def progress(done: int, total: int, message: str) -> None:
            bar.total = total
            bar.set_postfix_str(message, refresh=False)
            bar.update(done - bar.n)

        doc = run_rd(args.dataset, config, progress=progress, limit=args.limit)
    if old is not None:
        doc = merge_results(old, doc)
    write_json(doc, args.out)
    plot_path = args.plot or args.out.with_suffix(".png")
    plot_rd(doc, plot_path)
    if args.json:
        print(json.dumps(summarise(doc), indent=1))
    else:
        print_tables(doc)
        Console().print(f"wrote {args.out} and {plot_path}")
    return 0


def _run_report(args: argparse.Namespace) -> int:
    from textboost.eval.rd import SCHEMA, summarise
    from textboost.eval.report import markdown_table, plot_rd, print_tables

    if not args.inp.is_file():
        raise UsageError(f"--in: file not found: {args.inp}")
    try:
        doc = json.loads(args.inp.read_text())
    except json.JSONDecodeError as exc:
        raise UsageError(f"--in: {args.inp} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise UsageError(f"--in: {args.inp} is not an rd result (schema {SCHEMA})")
    if args.plot is not None:
        plot_rd(doc, args.plot)
    if args.markdown:
        print(markdown_table(doc))
    elif args.json:
        print(json.dumps(summarise(doc), indent=1))
    else:
        print_tables(doc)
    return 0


def _run_strip(args: argparse.Namespace) -> int:
    from textboost.eval.rd import load_checked_image
    from textboost.eval.strip import Crop, make_strip, render_strip

    if not args.image.is_file():
        raise UsageError(f"--image: file not found: {args.image}")
    if args.out.suffix.lower() != ".png":
        raise UsageError(f"--out must end in .png, got {args.out}")
    if not args.out.parent.is_dir():
        raise UsageError(f"--out: folder not found: {args.out.parent}")
    if args.zoom < 1:
        raise UsageError(f"--zoom must be >= 1, got {args.zoom}")
    try:
        img = load_checked_image(args.image)
    except ValueError as exc:
        raise UsageError(f"--image: {exc}") from None
    h, w = img.shape[:2]
    if args.crop is None:
        side = min(192, w, h)
        crop = Crop((w - side) // 2, (h - side) // 2, side, side)
    else:
        crop = Crop(*args.crop)
    try:
        crop.check(w, h)
    except ValueError as exc:
        raise UsageError(f"--crop: {exc}") from None
    panels = make_strip(img, args.codecs, args.bpp)
    render_strip(panels, crop, args.zoom, w, h).save(args.out)
    figures = [
        {
            "codec": p.label,
            "fit": p.image is not None,
            "bytes": p.n_bytes,
            "psnr_db": p.psnr_db,
            "detail": p.detail,
        }
        for p in panels[1:]
    ]
    if args.json:
        print(json.dumps({"image": str(args.image), "bpp": args.bpp, "panels": figures}, indent=1))
    else:
        for f in figures:
            if f["fit"]:
                print(f"{f['codec']}: {f['bytes']} B, {f['psnr_db']:.2f} dB ({f['detail']})")
            else:
                print(f"{f['codec']}: {f['detail']}")
        print(f"wrote {args.out}")
    return 0


def _run_synth(args: argparse.Namespace) -> int:
    from textboost.eval.synth_set import write_synth_set
    from textboost.train.synth_text import SynthConfig

    photos = sorted(
        p for p in args.photos.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")
    )
    if not photos:
        raise UsageError(f"--photos {args.photos}: no PNG or JPEG files")
    for path in write_synth_set(photos, args.out, args.seed, SynthConfig()):
        print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "rd":
            return _run_rd(args)
        if args.command == "report":
            return _run_report(args)
        if args.command == "text":
            return _run_text(args)
        if args.command == "synth":
            return _run_synth(args)
        return _run_strip(args)
    except UsageError as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
