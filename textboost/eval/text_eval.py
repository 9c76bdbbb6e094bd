"""Text-fidelity benchmark: can the ground station still read the text after compression?

For each annotated image and each target bpp the budget is floor(bpp × W × H / 8) bytes of
the whole file (the text section of a `.tbx` included). The entrants (original, AVIF at
equal bytes, the codec alone, TextBoost with the shipped, the paper's and the word fusion
block) are in :mod:`textboost.eval.text_entrants`; the tables and the crop grid in
:mod:`textboost.eval.text_report`.

The same spotter (``default_spotter``) reads every decoded image at full size; its words
are scored against the ground truth by ``text_match`` (ICDAR 2015 DET and E2E, plate
exact reads). A budget an entrant cannot meet delivers no image: its ground truth counts
as missed. PSNR is measured over the image and inside the ground truth's word quads
(squared errors pooled over the set for the summary). For TextBoost the words carried in
the text section are scored as well (``carried``): what an operator reads before any
pixel arrives.
"""

from __future__ import annotations

import base64
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from textboost.codec.image import load_image, psnr_db
from textboost.eval.budget import DOWNSCALE_DIVISORS, budget_bytes
from textboost.eval.provenance import code_version, library_versions, machine_info
from textboost.eval.text_entrants import (
    ENTRANTS,
    LABELS,
    MAX_WORKERS,
    Coded,
    EntrantOptions,
    entrant_settings,
    get_entrant,
)
from textboost.eval.text_report import (
    Crop,
    pick_rows,
    print_tables,
    render_grid,
    round_robin,
    table_rows,
)
from textboost.scenetext.gt import GtImage, GtWord, load_dataset
from textboost.scenetext.match import (
    DONT_CARE_AREA,
    IOU_THRESHOLD,
    SPECIAL_CHARACTERS,
    Counts,
    ImageMatch,
    match_image,
    plate_read,
    touching,
)
from textboost.text.words import Word

__all__ = [
    "DEFAULT_BPP",
    "DEFAULT_ENTRANTS",
    "ENTRANTS",
    "LABELS",
    "MAX_WORKERS",
    "SCHEMA",
    "Crop",
    "TextEvalConfig",
    "crops_from_doc",
    "evaluate_image",
    "keep_grid_rows",
    "merge_results",
    "pick_rows",
    "print_tables",
    "render_grid",
    "run_text_eval",
    "summarise_dataset",
    "table_rows",
    "write_json",
]

SCHEMA = "textboost-eval-text/1"
DEFAULT_BPP: tuple[float, ...] = (0.01, 0.02, 0.03, 0.06)
DEFAULT_ENTRANTS: tuple[str, ...] = ("original", "avif", "codec", "paper", "words")
# Evaluation-only sets are named here so that a training set evaluated by mistake is flagged.
TRAINING_SETS = ("openalpr_us",)


@dataclass(frozen=True)
class TextEvalConfig:
    """What to run: entrants, target bpps, AVIF downscale divisors, crop-grid budget."""

    entrants: tuple[str, ...] = DEFAULT_ENTRANTS
    bpp_targets: tuple[float, ...] = DEFAULT_BPP
    avif_divisors: tuple[float, ...] = DOWNSCALE_DIVISORS
    grid_bpp: float | None = None  # None: the target closest to 0.03
    workers: int = 1
    paper_fusion: Path | None = None  # the paper's block (None: the zoo's)
    word_fusion: Path | None = None  # the word block (None: the shipped file, if of that kind)
    stream_dir: Path | None = None  # streams kept once coded (text_entrants._stream)
    colours: bool = False  # TextBoost's streams carry each word's two colours too

    def __post_init__(self) -> None:
        if not self.entrants:
            raise ValueError("no entrants selected")
        for e in self.entrants:
            if e not in ENTRANTS:
                raise ValueError(f'unknown entrant "{e}": expected one of {", ".join(ENTRANTS)}')
        if len(set(self.entrants)) != len(self.entrants):
            raise ValueError(f"entrant listed twice: {', '.join(self.entrants)}")
        if not self.bpp_targets:
            raise ValueError("no target bpp given")
        for b in self.bpp_targets:
            if not (math.isfinite(b) and 0 < b <= 24):
                raise ValueError(f"target bpp must be in (0, 24], got {b}")
        if not self.avif_divisors or any(d < 1 for d in self.avif_divisors):
            raise ValueError(f"AVIF downscale divisors must be >= 1, got {self.avif_divisors}")
        if self.grid_bpp is not None and self.grid_bpp not in self.bpp_targets:
            raise ValueError(f"grid bpp {self.grid_bpp} is not one of the targets")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ValueError(f"workers must be 1..{MAX_WORKERS}, got {self.workers}")

    @property
    def grid_target(self) -> float:
        if self.grid_bpp is not None:
            return self.grid_bpp
        return min(self.bpp_targets, key=lambda b: (abs(b - 0.03), b))

    @property
    def options(self) -> EntrantOptions:
        return EntrantOptions(self.avif_divisors, self.workers, self.paper_fusion,
                              self.word_fusion, self.stream_dir, self.colours)  # fmt: skip



# -- one image ----------------------------------------------------------------------------


def _word_record(w: Word) -> list[Any]:
    return [w.text, round(w.score, 3), np.round(w.quad, 1).tolist()]


def _score(gt: GtImage, words: list[Word]) -> ImageMatch:
    return match_image(gt.words, words, ignore_unannotated=gt.kind == "plate")


def _point(
    gt: GtImage,
    img: np.ndarray,
    coded: Coded,
    words: list[Word],
    m: ImageMatch,
    target: float | None,
    budget: int | None,
) -> dict[str, Any]:
    h, w = img.shape[:2]
    p: dict[str, Any] = {
        "target_bpp": target,
        "budget_bytes": budget,
        "fit": True,
        "bytes": coded.n_bytes,
        "bpp": coded.n_bytes * 8 / (w * h),
        "text_bytes": coded.text_bytes,
        "psnr_db": None if target is None else psnr_db(img, coded.image),
        **({} if target is None else _text_errors(gt, img, coded.image)),
        "det": {"tp": m.det.tp, "n_gt": m.det.n_gt, "n_det": m.det.n_det},
        "e2e": {"tp": m.e2e.tp, "n_gt": m.e2e.n_gt, "n_det": m.e2e.n_det},
        "plate_read": m.plate_read,
        "pairs": [list(x) for x in m.pairs],
        "words": [_word_record(x) for x in words],
        **coded.detail,
    }
    if coded.carried is not None:
        cm = _score(gt, coded.carried)
        p["carried"] = {
            "n_words": len(coded.carried),
            "det": {"tp": cm.det.tp, "n_gt": cm.det.n_gt, "n_det": cm.det.n_det},
            "e2e": {"tp": cm.e2e.tp, "n_gt": cm.e2e.n_gt, "n_det": cm.e2e.n_det},
            "plate_read": cm.plate_read,
            "words": [_word_record(x) for x in coded.carried],
        }
    return p


def _text_errors(gt: GtImage, img: np.ndarray, out: np.ndarray) -> dict[str, Any]:
    """Squared error summed inside the ground truth's care quads, their pixel count (all
    three channels) and the PSNR there (None without care words)."""
    import cv2

    h, w = img.shape[:2]
    m = np.zeros((h, w), np.uint8)
    for g in gt.care_words:
        cv2.fillPoly(m, [np.round(g.quad).astype(np.int32)], 1)
    inside = m > 0
    n = int(inside.sum()) * 3
    if not n:
        return {"text_sse": 0.0, "text_px": 0, "text_psnr_db": None}
    d = img[inside].astype(np.float64) - out[inside].astype(np.float64)
    sse = float((d * d).sum())
    return {"text_sse": sse, "text_px": n, "text_psnr_db": _db(sse, n)}


def _db(sse: float, n: int) -> float:
    return 10 * math.log10(255.0**2 * n / max(sse, 1e-9))


def _no_point(gt: GtImage, target: float, budget: int, reason: str) -> dict[str, Any]:
    n_gt = len(gt.care_words)
    miss = {"tp": 0, "n_gt": n_gt, "n_det": 0}
    return {
        "target_bpp": target,
        "budget_bytes": budget,
        "fit": False,
        "reason": reason,
        "det": dict(miss),
        "e2e": dict(miss),
        "plate_read": False if gt.kind == "plate" else None,
    }


def _crop_word(gt: GtImage, match: ImageMatch) -> int | None:
    """The ground-truth word shown in the grid: among care words the original reads right,
    the one of median area (else any care word of median area)."""
    care = [i for i, g in enumerate(gt.words) if g.care and len(g.text) >= 2]
    if not care:
        return None
    good = [i for i, _, ok in match.pairs if ok and i in care]
    pool = good or care
    pool.sort(key=lambda i: _quad_area(gt.words[i].quad))
    return pool[len(pool) // 2]


def _quad_area(q: np.ndarray) -> float:
    x, y = q[:, 0], q[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _crop_box(word: GtWord, w: int, h: int) -> tuple[int, int, int, int]:
    x0, y0 = word.quad.min(axis=0)
    x1, y1 = word.quad.max(axis=0)
    pad = max(6.0, 0.6 * (y1 - y0))
    return (
        max(0, int(x0 - pad)),
        max(0, int(y0 - pad)),
        min(w, math.ceil(x1 + pad)),
        min(h, math.ceil(y1 + pad)),
    )


def _read_at(gt: GtImage, gt_index: int, m: ImageMatch, words: list[Word]) -> tuple[str, bool]:
    """What the spotter read on one ground-truth word: its matched detection, else the
    detections touching it (a plate counts as read if ``plate_read`` says so)."""
    for i, j, ok in m.pairs:
        if i == gt_index:
            return words[j].text, ok
    g = gt.words[gt_index]
    near = touching(g, words)
    ok = gt.kind == "plate" and plate_read(g, near)
    return " ".join(w.text for w in near), ok


def _png_b64(tile: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(tile).save(buf, "PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _png_array(text: str) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(text))) as im:
        return np.asarray(im.convert("RGB"))


_ORIGINAL_READS: dict[str, list[Word]] = {}  # one image's words on the original (the last)


def _original_reads(spotter: Any, path: Path, img: np.ndarray) -> list[Word]:
    """What the spotter reads on the original: once per image even when the image is
    evaluated entrant by entrant (the matrix benchmark)."""
    st = path.stat()
    key = f"{path}:{st.st_size}:{st.st_mtime_ns}"
    if key not in _ORIGINAL_READS:
        _ORIGINAL_READS.clear()
        _ORIGINAL_READS[key] = spotter.spot(img)
    return list(_ORIGINAL_READS[key])


def evaluate_image(gt: GtImage, config: TextEvalConfig, entrants: Sequence[str]) -> dict[str, Any]:
    """Every entrant on one image at every target. The record's ``grid`` holds the crop of
    one ground-truth word (chosen from the original's reading) as each entrant decoded it
    at the grid target, as PNG, so a grid can be drawn again from the JSON."""
    from textboost.text.spotter import default_spotter

    t0 = time.perf_counter()
    spotter = default_spotter()
    img = load_image(gt.image)
    h, w = img.shape[:2]
    targets = config.bpp_targets
    budgets = [budget_bytes(t, w, h) for t in targets]
    k_grid = targets.index(config.grid_target)
    rec: dict[str, Any] = {
        "file": gt.image.name,
        "width": w,
        "height": h,
        "kind": gt.kind,
        "n_gt_care": len(gt.care_words),
        "n_gt_dont_care": len(gt.words) - len(gt.care_words),
        "entrants": {},
    }
    orig_words = _original_reads(spotter, gt.image, img)
    orig_match = _score(gt, orig_words)
    gi = _crop_word(gt, orig_match)
    crop_box = _crop_box(gt.words[gi], w, h) if gi is not None else None
    tiles: dict[str, Any] = {}
    if gi is not None and crop_box is not None:
        rec["grid"] = {
            "gt_index": gi,
            "gt_text": gt.words[gi].text,
            "box": list(crop_box),
            "target_bpp": config.grid_target,
            "tiles": tiles,
        }

    def keep_tile(
        name: str, image: np.ndarray, words: list[Word], m: ImageMatch, coded: Coded | None
    ) -> None:
        if crop_box is None or gi is None:
            return
        x0, y0, x1, y1 = crop_box
        read, ok = _read_at(gt, gi, m, words)
        tile: dict[str, Any] = {"png": _png_b64(image[y0:y1, x0:x1]), "read": read, "correct": ok}
        if coded is not None and coded.carried is not None:
            tile["carried"] = list(_read_at(gt, gi, _score(gt, coded.carried), coded.carried))
        tiles[name] = tile

    for name in entrants:
        te = time.perf_counter()
        if name == "original":
            coded = Coded(gt.image.stat().st_size, 0, img, {"file_bytes_of": "source file"})
            rec["entrants"][name] = {
                "points": [_point(gt, img, coded, orig_words, orig_match, None, None)]
            }
            keep_tile(name, img, orig_words, orig_match, None)
            continue
        results = get_entrant(name, config.options).code_all(img, budgets)
        points = []
        for k, (t, b, coded) in enumerate(zip(targets, budgets, results, strict=True)):
            if coded is None:
                points.append(_no_point(gt, t, b, f"nothing fits {b} B"))
                continue
            words = spotter.spot(coded.image)
            m = _score(gt, words)
            points.append(_point(gt, img, coded, words, m, t, b))
            if k == k_grid:
                keep_tile(name, coded.image, words, m, coded)
        rec["entrants"][name] = {"points": points, "wall_s": time.perf_counter() - te}
    rec["wall_s"] = time.perf_counter() - t0
    return rec



def keep_grid_rows(doc: dict[str, Any], n: int) -> dict[str, Any]:
    """``doc`` with the PNG tiles of only the ``n`` grid rows (the datasets in turn, first
    images first); the other images keep what was read on their word, without pixels."""
    chosen = set(
        round_robin(
            {
                name: [r["file"] for r in ds["images"] if r.get("grid")]
                for name, ds in doc["datasets"].items()
            },
            n,
        )
    )
    for name, ds in doc["datasets"].items():
        for r in ds["images"]:
            if r.get("grid") and (name, r["file"]) not in chosen:
                for t in r["grid"]["tiles"].values():
                    t.pop("png", None)
    return doc


def crops_from_doc(doc: dict[str, Any], entrants: Sequence[str] | None = None) -> list[Crop]:
    """The grid crops stored (with pixels) in a result document, dataset by dataset."""
    out = []
    for name, ds in doc["datasets"].items():
        for r in ds["images"]:
            g = r.get("grid")
            if not g:
                continue
            tiles = {
                e: t
                for e, t in g["tiles"].items()
                if "png" in t and (entrants is None or e in entrants)
            }
            if not tiles:
                continue
            out.append(
                Crop(
                    name,
                    r["file"],
                    g["gt_text"],
                    tuple(g["box"]),
                    {e: _png_array(t["png"]) for e, t in tiles.items()},
                    {e: t["read"] for e, t in tiles.items()},
                    {e: t["correct"] for e, t in tiles.items()},
                    {e: tuple(t["carried"]) for e, t in tiles.items() if "carried" in t},
                    {e: t["note"] for e, t in g["tiles"].items() if "note" in t},
                )
            )
    return out


# -- a whole run --------------------------------------------------------------------------


def _sum_counts(points: list[dict[str, Any]], key: str) -> Counts:
    total = Counts()
    for p in points:
        total = total + Counts(p[key]["tp"], p[key]["n_gt"], p[key]["n_det"])
    return total


def _mean(vals: list[float]) -> float | None:
    return float(np.mean(vals)) if vals else None


def _pooled(points: list[dict[str, Any]]) -> float | None:
    """PSNR inside the word quads, squared errors pooled over the images that fit."""
    n = sum(p.get("text_px", 0) for p in points)
    return _db(sum(p.get("text_sse", 0.0) for p in points), n) if n else None


def summarise_dataset(
    images: list[dict[str, Any]], entrants: Sequence[str], kind: str
) -> dict[str, list[dict[str, Any]]]:
    """Per entrant, one row per target: summed DET/E2E counts, plate share, means."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name in entrants:
        per_image = [r["entrants"][name]["points"] for r in images if name in r["entrants"]]
        if not per_image:
            continue
        rows = []
        for k in range(len(per_image[0])):
            pts = [pp[k] for pp in per_image]
            fit = [p for p in pts if p["fit"]]
            row: dict[str, Any] = {
                "target_bpp": pts[0]["target_bpp"],
                "n_images": len(pts),
                "n_fit": len(fit),
                "bpp": _mean([p["bpp"] for p in fit]),
                "bytes": _mean([p["bytes"] for p in fit]),
                "text_bytes": _mean([p["text_bytes"] for p in fit]),
                "psnr_db": _mean([p["psnr_db"] for p in fit if p["psnr_db"] is not None]),
                "text_psnr_db": _pooled(fit),
                "det": _sum_counts(pts, "det").as_dict(),
                "e2e": _sum_counts(pts, "e2e").as_dict(),
                "plate_read_share": (
                    sum(bool(p["plate_read"]) for p in pts) / len(pts) if kind == "plate" else None
                ),
            }
            carried = [p["carried"] for p in fit if "carried" in p]
            if carried:
                row["carried"] = {
                    "n_words": _mean([c["n_words"] for c in carried]),
                    "det": _sum_counts(carried, "det").as_dict(),
                    "e2e": _sum_counts(carried, "e2e").as_dict(),
                    "plate_read_share": (
                        sum(bool(c["plate_read"]) for c in carried) / len(pts)
                        if kind == "plate"
                        else None
                    ),
                }
            rows.append(row)
        out[name] = rows
    return out


def run_text_eval(
    datasets: Sequence[Path],
    config: TextEvalConfig,
    limit: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate every dataset (the first ``limit`` annotated images of each); returns the
    result document (grid crops included, see :func:`crops_from_doc`)."""
    loaded: dict[str, tuple[Path, list[GtImage], list[str]]] = {}
    for d in datasets:
        name = d.name
        if name in loaded:
            raise ValueError(f"dataset {name!r} given twice")
        images, skipped = load_dataset(d, limit)
        loaded[name] = (d, images, skipped)
    settings = entrant_settings(config.entrants, config.options)
    entrants = [e for e in config.entrants if "unavailable" not in settings[e]]
    unavailable = {e: settings[e]["unavailable"] for e in config.entrants if e not in entrants}
    jobs = [(name, gt) for name, (_, images, _) in loaded.items() for gt in images]
    results: dict[tuple[str, str], dict[str, Any]] = {}
    t0 = time.perf_counter()

    def done(key: tuple[str, str], rec: dict[str, Any]) -> None:
        results[key] = rec
        if progress:
            progress(len(results), len(jobs), f"{key[0]}/{key[1]} {rec['wall_s']:.0f}s")

    if config.workers == 1:
        for name, gt in jobs:
            done((name, gt.image.name), evaluate_image(gt, config, entrants))
    else:
        ctx = get_context("spawn")
        with ProcessPoolExecutor(max_workers=config.workers, mp_context=ctx) as pool:
            futures = {
                pool.submit(evaluate_image, gt, config, entrants): (name, gt.image.name)
                for name, gt in jobs
            }
            for fut in as_completed(futures):
                key = futures[fut]
                try:
                    res = fut.result()
                except Exception as exc:
                    for other in futures:
                        other.cancel()
                    raise RuntimeError(
                        f"text evaluation failed on {key[0]}/{key[1]}: {exc}"
                    ) from exc
                done(key, res)
    wall_s = time.perf_counter() - t0
    doc_sets: dict[str, Any] = {}
    for name, (path, images, skipped) in loaded.items():
        recs = [results[(name, gt.image.name)] for gt in images]
        kinds = sorted({gt.kind for gt in images})
        kind = kinds[0] if len(kinds) == 1 else "mixed"
        doc_sets[name] = {
            "path": str(path),
            "kind": kind,
            "reserved_for_training": name in TRAINING_SETS,
            "skipped_without_gt": skipped,
            "images": recs,
            "summary": summarise_dataset(recs, entrants, kind),
        }
    run = {
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_s": wall_s,
        "workers": config.workers,
        "limit_per_dataset": limit,
        "entrants": entrants,
        "machine": machine_info(),
        "versions": {**library_versions(), **_text_versions()},
        "code": code_version(),
    }
    doc = {
        "schema": SCHEMA,
        "run": run,
        "bpp_targets": list(config.bpp_targets),
        "grid_bpp": config.grid_target,
        "budget_rule": "budget_bytes = floor(bpp * W * H / 8); a point counts the whole file, "
        "text section included",
        "protocol": {
            "name": "ICDAR 2015 (RRC Challenge 4) DET and generic E2E, summed over images",
            "iou_threshold": f"> {IOU_THRESHOLD}",
            "dont_care": f"detection ignored if > {DONT_CARE_AREA} of its area lies in one "
            "### region",
            "matching": "greedy one-to-one, ground truth in file order, detections in "
            "spotter order",
            "e2e_normalisation": "NFKC, strip, upper case, exact; one special character "
            f"of {SPECIAL_CHARACTERS!r} at either end of the ground truth may be missing",
            "plates": "detections not touching the annotated plate are ignored; a plate is "
            "read when the NFKC/upper/alphanumeric text of one touching detection, or of "
            "all of them joined left to right, equals the plate",
            "not_fitting": "an entrant that cannot meet a budget delivers nothing: its "
            "ground truth counts as missed",
            "spotter": "textboost.text.spotter.default_spotter (RapidOCR PP-OCRv4, "
            "text_score 0.5, no angle classifier) on the full-size decoded image",
        },
        "entrants": {
            e: {"label": LABELS[e], "settings": settings[e], "run": run} for e in entrants
        },
        "unavailable": unavailable,
        "datasets": doc_sets,
    }
    return doc


def merge_results(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` with the entrants of ``new`` added or replaced (each keeps its own ``run``);
    both must cover the same images at the same targets and grid budget."""
    if old.get("schema") != SCHEMA:
        raise ValueError(f"cannot merge: schema {old.get('schema')!r}, expected {SCHEMA!r}")
    for key in ("bpp_targets", "grid_bpp"):
        if old[key] != new[key]:
            raise ValueError(f"cannot merge: {key} {old[key]} here, {new[key]} in the new run")
    if {n: [r["file"] for r in d["images"]] for n, d in old["datasets"].items()} != {
        n: [r["file"] for r in d["images"]] for n, d in new["datasets"].items()
    }:
        raise ValueError("cannot merge: the existing file covers other datasets or images")
    entrants = {**old["entrants"], **new["entrants"]}
    order = [e for e in ENTRANTS if e in entrants]
    datasets = {}
    for name, ds in old["datasets"].items():
        images = []
        for a, b in zip(ds["images"], new["datasets"][name]["images"], strict=True):
            rec = {**a, "entrants": {**a["entrants"], **b["entrants"]}}
            if "grid" in a and "grid" in b:
                new_tiles = b["grid"]["tiles"]
                if a["grid"]["box"] != b["grid"]["box"]:  # other crops: keep only the reads
                    new_tiles = {
                        e: {k: v for k, v in t.items() if k != "png"} for e, t in new_tiles.items()
                    }
                rec["grid"] = {**a["grid"], "tiles": {**a["grid"]["tiles"], **new_tiles}}
            rec["entrants"] = {e: rec["entrants"][e] for e in order if e in rec["entrants"]}
            images.append(rec)
        datasets[name] = {
            **ds,
            "images": images,
            "summary": summarise_dataset(images, order, ds["kind"]),
        }
    unavailable = {
        k: v for k, v in {**old["unavailable"], **new["unavailable"]}.items() if k not in entrants
    }
    return {
        **old,
        "entrants": {e: entrants[e] for e in order},
        "unavailable": unavailable,
        "datasets": datasets,
    }


def _text_versions() -> dict[str, Any]:
    import importlib.metadata

    out: dict[str, Any] = {}
    for pkg in ("rapidocr-onnxruntime", "onnxruntime", "shapely", "brotli"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def write_json(doc: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")


# -- report -------------------------------------------------------------------------------
