"""The text benchmark's whole evaluation matrix (issue 26), resumable, in one command.

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/text_matrix.py \
        --word-fusion results/text26/words_best.fusion.safetensors --out results/text_matrix

At 0.02 / 0.03 / 0.06 bpp total (text section included) on ICDAR 2015 ×7, OpenALPR EU and
BR (all images) and the sign set the project's generator draws on the 24 Kodak photos
(written once into ``--work``): the original, AVIF at equal bytes, the codec alone, the
paper's block and the word block — DET and E2E F1 of the spotter on the decoded picture,
plates read exactly, PSNR over the image and inside the word quads, the carried words'
own F1, bytes (:mod:`textboost.eval.text_matrix`). Each (set, rate, entrant) is a file
under ``OUT/units`` filled image by image, so the same command continues a run that was
stopped; after every unit ``OUT/matrix.json``, ``OUT/matrix.md`` and the crop grids
``OUT/grid_<set>_<bpp>.png`` are written again from what the units hold. ``--sets``,
``--rates``, ``--entrants`` and ``--limit`` narrow it (the order of ``--rates`` is the
order run: 0.03 first by default).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textboost.eval.budget import DOWNSCALE_DIVISORS  # noqa: E402
from textboost.eval.text_entrants import ENTRANTS  # noqa: E402
from textboost.eval.text_eval import TextEvalConfig  # noqa: E402
from textboost.eval.text_matrix import (  # noqa: E402
    MatrixSet,
    assemble,
    markdown,
    plan_units,
    run_unit,
)
from textboost.scenetext.gt import GtImage, load_dataset  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
SETS = {
    "icdar": SHARED / "scenetext" / "icdar2015_mmocr_toy",
    "eu": SHARED / "scenetext" / "openalpr_eu",
    "br": SHARED / "scenetext" / "openalpr_br",
    "kodak_signs": None,  # drawn into --work by the project's generator
}
KODAK_SEED = 20261203  # python -m textboost.eval synth's default


def kodak_signs(work: Path) -> Path:
    """The Kodak sign set (python -m textboost.eval synth --photos ../shared/data/kodak),
    written once."""
    from textboost.eval.synth_set import write_synth_set
    from textboost.train.synth_text import SynthConfig

    out = work / "kodak_signs"
    photos = sorted((SHARED / "kodak").glob("*.png"))
    if not photos:
        raise FileNotFoundError(f"no Kodak photos under {SHARED / 'kodak'}")
    if not (out / "MANIFEST.tsv").is_file():
        write_synth_set(photos, out, KODAK_SEED, SynthConfig())
    return out


def set_folder(name: str, work: Path) -> Path:
    return kodak_signs(work) if SETS[name] is None else SETS[name]


def set_images(name: str, work: Path, limit: int | None = None) -> list[GtImage]:
    images, _ = load_dataset(set_folder(name, work), limit)
    return images


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "results" / "text_matrix")
    p.add_argument("--work", type=Path, default=ROOT / "build" / "text_matrix",
                   help="the Kodak sign set and the coded streams (not results)")
    p.add_argument("--sets", default="icdar,br,kodak_signs,eu")
    p.add_argument("--rates", default="0.03,0.02,0.06")
    p.add_argument("--entrants", default="original,codec,words,paper,avif")
    p.add_argument("--word-fusion", type=Path, default=None)
    p.add_argument("--paper-fusion", type=Path, default=None)
    p.add_argument("--avif-downscale", default=",".join(f"{d:g}" for d in DOWNSCALE_DIVISORS))
    p.add_argument("--limit", type=int, default=None, help="first N annotated images a set")
    p.add_argument("--grid-rows", type=int, default=12)
    p.add_argument("--colours", action="store_true",
                   help="TextBoost's streams carry each word's two colours (3 B a word more)")
    p.add_argument("--assemble-only", action="store_true",
                   help="only write matrix.json/.md and the grids from the units")
    args = p.parse_args()
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    for s in sets:
        if s not in SETS:
            p.error(f"--sets: unknown set {s!r}: expected some of {', '.join(SETS)}")
    entrants = [e.strip() for e in args.entrants.split(",") if e.strip()]
    for e in entrants:
        if e not in ENTRANTS:
            p.error(f"--entrants: unknown entrant {e!r}: expected some of {', '.join(ENTRANTS)}")
    try:
        rates = [float(r) for r in args.rates.split(",") if r.strip()]
        divisors = tuple(float(d) for d in args.avif_downscale.split(",") if d.strip())
    except ValueError as exc:
        p.error(f"--rates/--avif-downscale: {exc}")
    for flag, f in (("--word-fusion", args.word_fusion), ("--paper-fusion", args.paper_fusion)):
        if f is not None and not f.is_file():
            p.error(f"{flag}: file not found: {f}")
    args.out.mkdir(parents=True, exist_ok=True)
    base = TextEvalConfig(
        avif_divisors=divisors,
        paper_fusion=args.paper_fusion,
        word_fusion=args.word_fusion,
        stream_dir=args.work / "streams",
        colours=args.colours,
    )
    msets = []
    for s in sets:
        images = set_images(s, args.work, args.limit)
        kinds = sorted({g.kind for g in images})
        msets.append(MatrixSet(s, set_folder(s, args.work), kinds[0] if len(kinds) == 1
                               else "mixed", tuple(images)))  # fmt: skip
    by_name = {m.name: m for m in msets}

    def write() -> None:
        doc = assemble(args.out, msets, rates, entrants, args.grid_rows)
        (args.out / "matrix.json").write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
        (args.out / "matrix.md").write_text(markdown(doc))

    if not args.assemble_only:
        for u in plan_units(sets, rates, entrants):
            t0 = time.time()
            n = run_unit(u, by_name[u.dataset], base, args.out,
                         lambda m: print(m, os.getloadavg()[0], flush=True))  # fmt: skip
            if n:
                print(f"unit {u.dataset} {u.label}: {n} images in {time.time() - t0:.0f} s",
                      flush=True)  # fmt: skip
                write()
    write()
    print((args.out / "matrix.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
