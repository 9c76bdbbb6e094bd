"""Text-fidelity benchmark: can the ground station still read the text after compression?

For each annotated image and each target bpp the budget is floor(bpp × W × H / 8) bytes of
the whole file (the text section of a `.tbx` included). Entrants:

- ``original``: the source image, uncompressed (the ceiling; one point, no budget);
- ``avif``: AVIF at equal bytes, the best-PSNR file over quality × downscale that fits
  (``textboost.eval.budget.search_budgets``, as in the RD benchmark);
- ``codec``: the project's codec alone, ``encode_to_budget(img, max_bytes=N, text=False)``,
  decoded without fusion;
- ``textboost``: the full method, ``encode_to_budget(img, max_bytes=N, text=True)`` (the
  sender spots, filters and carries the words inside the budget), decoded with fusion when
  the model has a fusion block (``settings.fusion`` says which).

The same spotter (RapidOCR PP-OCRv4) reads every decoded image at full size; its words
are scored against the ground truth by ``text_match`` (ICDAR 2015 DET and E2E, plate
exact reads). A budget an entrant cannot meet delivers no image: its ground truth counts
as missed. For TextBoost the words carried in the text section are scored as well
(``carried``): what an operator reads before any pixel arrives.
"""

from __future__ import annotations

import base64
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from textboost.codec.image import load_image, psnr_db
from textboost.eval.budget import DOWNSCALE_DIVISORS, budget_bytes, reconstruct, search_budgets
from textboost.eval.provenance import code_version, library_versions, machine_info
from textboost.eval.text_gt import GtImage, GtWord, load_dataset
from textboost.eval.text_match import (
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
    "run_text_eval",
    "summarise_dataset",
    "write_json",
]

SCHEMA = "textboost-eval-text/1"
DEFAULT_BPP: tuple[float, ...] = (0.01, 0.02, 0.03, 0.06)
ENTRANTS: tuple[str, ...] = ("original", "avif", "codec", "textboost")
LABELS = {
    "original": "original (uncompressed)",
    "avif": "AVIF (libaom), best of quality x downscale",
    "codec": "codec alone",
    "textboost": "TextBoost",
}
MAX_WORKERS = 2  # the CPU is shared: never more than two processes
# Evaluation-only sets are named here so that a training set evaluated by mistake is flagged.
TRAINING_SETS = ("openalpr_us",)


@dataclass(frozen=True)
class TextEvalConfig:
    """What to run: entrants, target bpps, AVIF downscale divisors, crop-grid budget."""

    entrants: tuple[str, ...] = ENTRANTS
    bpp_targets: tuple[float, ...] = DEFAULT_BPP
    avif_divisors: tuple[float, ...] = DOWNSCALE_DIVISORS
    grid_bpp: float | None = None  # None: the target closest to 0.03
    workers: int = 1

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


@dataclass(frozen=True)
class Coded:
    """One entrant's file at one budget: its size, text bytes, decoded image and how."""

    n_bytes: int
    text_bytes: int
    image: np.ndarray
    detail: dict[str, Any] = field(default_factory=dict)
    carried: list[Word] | None = None  # words in the text section (TextBoost)


# -- entrants -----------------------------------------------------------------------------


class _AvifEntrant:
    name = "avif"

    def __init__(self, divisors: Sequence[float]) -> None:
        from textboost.eval.baselines import get_baseline

        self.codec = get_baseline("avif")
        self.divisors = tuple(divisors)

    @property
    def settings(self) -> dict[str, Any]:
        return {
            **self.codec.settings,
            "downscale_divisors": list(self.divisors),
            "quality_range": [self.codec.quality_min, self.codec.quality_max],
            "selection": "best PSNR among the files that fit (textboost.eval.budget)",
            "resampling": "Lanczos (Pillow) down and up",
        }

    def code_all(self, img: np.ndarray, budgets: Sequence[int]) -> list[Coded | None]:
        h, w = img.shape[:2]
        search = search_budgets(img, self.codec, budgets, self.divisors)
        out: list[Coded | None] = []
        for cand in search.best:
            if cand is None:
                out.append(None)
                continue
            detail = {
                "quality": cand.quality,
                "downscale": cand.divisor,
                "coded_size": list(cand.coded_size),
            }
            out.append(Coded(cand.n_bytes, 0, reconstruct(self.codec, cand, (w, h)), detail))
        return out


_CODEC: Any = None  # one loaded model per process


def _load_codec(threads: int) -> Any:
    global _CODEC
    if _CODEC is None:
        import torch

        from textboost.codec.api import Codec

        torch.set_num_threads(threads)
        _CODEC = Codec.load()
    return _CODEC


def _fusion_file(codec: Any) -> dict[str, Any] | None:
    """Name and metadata of the fusion weights a codec loaded (None when it has none)."""
    if getattr(codec, "fusion", None) is None:
        return None
    try:
        from textboost.codec.weights import fusion_path
        from textboost.fusion.runtime import fusion_metadata

        path = fusion_path(codec.model.path)
        return {"file": path.name, **fusion_metadata(path)}
    except (ImportError, OSError, ValueError, AttributeError) as exc:
        return {"error": str(exc)}


class _CodecEntrant:
    """The project's codec; ``text=True`` is TextBoost (words carried, fused at decode)."""

    def __init__(self, text: bool, threads: int) -> None:
        self.text = text
        self.threads = threads
        self.name = "textboost" if text else "codec"
        self.codec = _load_codec(threads)
        self.fusion = bool(text and self.codec.fusion is not None)

    @property
    def settings(self) -> dict[str, Any]:
        s: dict[str, Any] = {
            "library": "textboost",
            "model_id": self.codec.model_id.hex(),
            "encode": f"encode_to_budget(img, max_bytes=budget, text={self.text})",
            "decode": f"decode(data, fusion={self.fusion})",
            "fusion": self.fusion,
            "backend": "torch",
            "device": "cpu",
            "torch_threads": self.threads,
        }
        if self.fusion:
            s["fusion_file"] = _fusion_file(self.codec)
        flt = getattr(self.codec, "text_filter", None)
        if self.text and flt is not None:
            s["text_filter"] = repr(flt)
        return s

    def _encode(self, img: np.ndarray, budget: int) -> bytes:
        data = self.codec.encode_to_budget(img, max_bytes=budget, text=self.text)
        if len(data) > budget:
            raise AssertionError(f"encode_to_budget returned {len(data)} B for {budget} B")
        return data

    def _decode(self, data: bytes) -> np.ndarray:
        return self.codec.decode(data, fusion=self.fusion)

    def code_all(self, img: np.ndarray, budgets: Sequence[int]) -> list[Coded | None]:
        from textboost.codec.budget import BudgetError
        from textboost.codec.container import Container
        from textboost.codec.exact import RATE_MAX

        out: list[Coded | None] = []
        for b in budgets:
            try:
                data = self._encode(img, b)
            except BudgetError:
                out.append(None)
                continue
            c = Container.parse(data)
            hd = c.header
            detail = {"rate": hd.rate / RATE_MAX, "coded_size": list(hd.coded_size)}
            carried = self.codec.words(data) if self.text and hasattr(self.codec, "words") else None
            out.append(Coded(len(data), len(c.text), self._decode(data), detail, carried))
        return out


_ENTRANTS: dict[str, Any] = {}


def _entrant(name: str, config: TextEvalConfig) -> Any:
    if name not in _ENTRANTS:
        if name == "avif":
            _ENTRANTS[name] = _AvifEntrant(config.avif_divisors)
        else:
            threads = max(1, MAX_WORKERS // config.workers)  # two cores at most in all
            _ENTRANTS[name] = _CodecEntrant(text=name == "textboost", threads=threads)
    return _ENTRANTS[name]


def entrant_settings(names: Sequence[str], config: TextEvalConfig) -> dict[str, Any]:
    """Settings of each entrant that can run, and why each other one cannot."""
    settings: dict[str, Any] = {}
    for n in names:
        if n == "original":
            settings[n] = {"note": "the source file decoded, no compression"}
            continue
        try:
            settings[n] = _entrant(n, config).settings
        except Exception as exc:  # reported in the result, not fatal
            settings[n] = {"unavailable": f"{type(exc).__name__}: {exc}"}
    return settings


# -- one image ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Crop:
    """A grid tile: one ground-truth word of one image as each entrant decoded it."""

    dataset: str
    file: str
    gt_text: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels
    tiles: dict[str, np.ndarray]  # entrant -> RGB crop
    reads: dict[str, str]  # entrant -> what the spotter read there
    correct: dict[str, bool]
    carried: dict[str, tuple[str, bool]] = field(default_factory=dict)  # text-section words


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
    orig_words = spotter.spot(img)
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
        results = _entrant(name, config).code_all(img, budgets)
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


def _round_robin(keys: dict[str, list[str]], n: int) -> list[tuple[str, str]]:
    queues = [[(name, k) for k in ks] for name, ks in keys.items()]
    out: list[tuple[str, str]] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


def keep_grid_rows(doc: dict[str, Any], n: int) -> dict[str, Any]:
    """``doc`` with the PNG tiles of only the ``n`` grid rows (the datasets in turn, first
    images first); the other images keep what was read on their word, without pixels."""
    chosen = set(
        _round_robin(
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
    settings = entrant_settings(config.entrants, config)
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


def _fmt(v: float | None, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def table_rows(doc: dict[str, Any]) -> list[tuple[str, list[list[str]]]]:
    """Per dataset, the printable rows: entrant, target, bpp, text B, PSNR, DET, E2E, plates."""
    out = []
    for name, ds in doc["datasets"].items():
        rows = []
        for entrant, summary in ds["summary"].items():
            for r in summary:
                plate = r["plate_read_share"]
                row = [
                    entrant,
                    _fmt(r["target_bpp"], ".3f"),
                    f"{r['n_fit']}/{r['n_images']}",
                    _fmt(r["bpp"], ".4f"),
                    _fmt(r["text_bytes"], ".0f"),
                    _fmt(r["psnr_db"], ".2f"),
                    f"{r['det']['precision']:.2f}/{r['det']['recall']:.2f}/{r['det']['f1']:.3f}",
                    f"{r['e2e']['precision']:.2f}/{r['e2e']['recall']:.2f}/{r['e2e']['f1']:.3f}",
                    _fmt(plate, ".2f"),
                ]
                carried = r.get("carried")
                row.append(
                    "—"
                    if carried is None
                    else f"{carried['e2e']['f1']:.3f}"
                    + (
                        f" ({carried['plate_read_share']:.2f})"
                        if carried["plate_read_share"] is not None
                        else ""
                    )
                )
                rows.append(row)
        out.append((f"{name} ({len(ds['images'])} images, {ds['kind']})", rows))
    return out


TABLE_HEADER = [
    "entrant",
    "target",
    "fit",
    "bpp",
    "text B",
    "PSNR",
    "DET P/R/F1",
    "E2E P/R/F1",
    "plates",
    "carried E2E",
]


def print_tables(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 132))  # the whole table, even in a pipe
    for title, rows in table_rows(doc):
        t = Table(title=title)
        for h in TABLE_HEADER:
            t.add_column(h, justify="left" if h == "entrant" else "right")
        for r in rows:
            t.add_row(*r)
        console.print(t)
    if doc["unavailable"]:
        for e, why in doc["unavailable"].items():
            console.print(f"{e}: not run ({why})")


def pick_rows(crops: Sequence[Crop], n: int) -> list[Crop]:
    """Up to ``n`` crops, taking the datasets in turn (first images first)."""
    by_key = {(c.dataset, c.file): c for c in crops}
    keys: dict[str, list[str]] = {}
    for c in crops:
        keys.setdefault(c.dataset, []).append(c.file)
    return [by_key[k] for k in _round_robin(keys, n)]


def render_grid(
    crops: Sequence[Crop],
    entrants: Sequence[str],
    bpp: float,
    tile_h: int = 100,
    max_tile_w: int = 360,
):
    """A PNG-ready image: one row per crop, one column per entrant, each tile upscaled
    (nearest, integer zoom) to about ``tile_h`` px high and captioned with what the spotter
    read on the matched box (green: E2E-correct, red: wrong or nothing) and, for TextBoost,
    the word its text section carried there."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=13)
    small = ImageFont.load_default(size=11)
    label_w, cap_h, head_h, gap = 190, 18, 22, 6
    geo = []
    for c in crops:
        x0, y0, x1, y1 = c.box
        cw, ch = x1 - x0, y1 - y0
        zoom = max(1, round(tile_h / max(ch, 1)))
        w, h = cw * zoom, ch * zoom
        if w > max_tile_w:  # a long word: shrink back to the column width
            h = max(1, round(h * max_tile_w / w))
            w = max_tile_w
        geo.append((zoom, w, h))
    col_w = max([w for _, w, _ in geo], default=max_tile_w)
    row_hs = [max(h, 3 * cap_h) + 2 * cap_h + gap for _, _, h in geo]
    width = label_w + len(entrants) * (col_w + gap)
    height = head_h + sum(row_hs) + gap
    out = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(out)
    for k, e in enumerate(entrants):
        title = "original" if e == "original" else f"{LABELS[e].split(',')[0]} @ {bpp:g} bpp"
        draw.text((label_w + k * (col_w + gap) + 2, 3), title, fill=(0, 0, 0), font=font)
    y = head_h
    for c, (zoom, w, h), rh in zip(crops, geo, row_hs, strict=True):
        size = f"{c.box[2] - c.box[0]}x{c.box[3] - c.box[1]} px, x{zoom}"
        label = f"{c.dataset}\n{c.file}\nGT: {c.gt_text}\n{size}"
        draw.multiline_text((3, y), label, fill=(0, 0, 0), font=small, spacing=1)
        for k, e in enumerate(entrants):
            x = label_w + k * (col_w + gap)
            tile = c.tiles.get(e)
            if tile is None or tile.size == 0:
                draw.rectangle([x, y, x + w - 1, y + h - 1], fill=(160, 160, 160))
                draw.text((x + 3, y + 3), "nothing fits", fill=(0, 0, 0), font=small)
            else:
                im = Image.fromarray(tile).resize(
                    (tile.shape[1] * zoom, tile.shape[0] * zoom), Image.Resampling.NEAREST
                )
                if im.size != (w, h):
                    im = im.resize((w, h), Image.Resampling.LANCZOS)
                out.paste(im, (x, y))
            read = c.reads.get(e, "")
            ok = c.correct.get(e, False)
            draw.text(
                (x + 2, y + h + 2),
                f"read: {read!r}" if read else "read: (nothing)",
                fill=(0, 130, 0) if ok else (200, 0, 0),
                font=small,
            )
            if e in c.carried:
                text, ok = c.carried[e]
                draw.text(
                    (x + 2, y + h + 2 + cap_h - 4),
                    f"carried: {text!r}" if text else "carried: (nothing)",
                    fill=(0, 130, 0) if ok else (200, 0, 0),
                    font=small,
                )
        y += rh
    return out
