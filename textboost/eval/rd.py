"""Rate–distortion evaluation over an image set: every codec at the same per-image byte budgets.

For each image and each target bpp the budget is floor(bpp × W × H / 8) bytes. Baselines are
fitted by the quality × downscale search of `budget.py`; the project's codec ("ours") by
`encode_to_budget`. A point records real file bytes, PSNR and MS-SSIM of the decoded image at
full size; a budget nothing fits is recorded as such (no point), never as an overshoot.

Averages are taken per target bpp over images (PSNR in dB averaged per image), only where
every image has a point; partial averages are flagged `complete: false` and left out of the
plot and of BD figures. BD-rate and BD-PSNR of each codec against AVIF use those averages.
"""

from __future__ import annotations

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
from PIL import Image

from textboost.codec.image import load_image, psnr_db
from textboost.codec.rate import bpp_of
from textboost.eval.baselines import BASELINE_NAMES, CodecUnavailableError, get_baseline
from textboost.eval.bd import bd_psnr, bd_rate
from textboost.eval.budget import (
    DOWNSCALE_DIVISORS,
    budget_bytes,
    reconstruct,
    search_budgets,
)
from textboost.eval.metrics import MS_SSIM_WEIGHTS, ms_ssim
from textboost.eval.ours import OURS_NAME, BudgetError
from textboost.eval.provenance import code_version, library_versions, machine_info

__all__ = [
    "ALL_CODECS",
    "BD_ANCHOR",
    "BD_WINDOW",
    "DEFAULT_BPP",
    "MAX_WORKERS",
    "SCHEMA",
    "RdConfig",
    "check_image",
    "evaluate_image",
    "list_images",
    "load_checked_image",
    "merge_results",
    "run_rd",
    "summarise",
]

SCHEMA = "textboost-eval-rd/1"
DEFAULT_BPP: tuple[float, ...] = (0.01, 0.015, 0.02, 0.03, 0.05, 0.08, 0.12, 0.15)
ALL_CODECS: tuple[str, ...] = (*BASELINE_NAMES, OURS_NAME)
BD_ANCHOR = "avif"
# The target window: the link budgets this project is for (0.02–0.08 bpp).
BD_WINDOW: tuple[float, float] = (0.02, 0.08)
MAX_WORKERS = 2  # the CPU is shared with training: never more than two encoder processes
MIN_SIDE_PX = 11 * 2 ** (len(MS_SSIM_WEIGHTS) - 1)  # 5-scale MS-SSIM with an 11×11 window


@dataclass(frozen=True)
class RdConfig:
    """What to run: codecs, target bpps, downscale divisors per baseline, worker count."""

    codecs: tuple[str, ...]
    bpp_targets: tuple[float, ...] = DEFAULT_BPP
    divisors: dict[str, tuple[float, ...]] = field(default_factory=dict)
    workers: int = MAX_WORKERS

    def __post_init__(self) -> None:
        if not self.codecs:
            raise ValueError("no codecs selected")
        for c in self.codecs:
            if c not in ALL_CODECS:
                raise ValueError(f'unknown codec "{c}": expected one of {", ".join(ALL_CODECS)}')
        if len(set(self.codecs)) != len(self.codecs):
            raise ValueError(f"codec listed twice: {', '.join(self.codecs)}")
        if not self.bpp_targets:
            raise ValueError("no target bpp given")
        for b in self.bpp_targets:
            if not (math.isfinite(b) and 0 < b <= 24):
                raise ValueError(f"target bpp must be in (0, 24], got {b}")
        for c, ds in self.divisors.items():
            if c not in BASELINE_NAMES:
                raise ValueError(f'downscale divisors given for "{c}", which is not a baseline')
            if not ds or any(d < 1 for d in ds):
                raise ValueError(f"{c}: downscale divisors must be >= 1, got {list(ds)}")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ValueError(f"workers must be 1..{MAX_WORKERS}, got {self.workers}")

    def divisors_for(self, codec: str) -> tuple[float, ...]:
        return self.divisors.get(codec, DOWNSCALE_DIVISORS)


def list_images(dataset: Path) -> list[Path]:
    """The PNG images of a folder, sorted by name; raises if the folder has none."""
    if not dataset.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {dataset}")
    paths = sorted(p for p in dataset.iterdir() if p.suffix.lower() == ".png")
    if not paths:
        raise FileNotFoundError(f"no .png images in {dataset}")
    return paths


def check_image(path: Path) -> tuple[int, int]:
    """(W, H) of an image file; rejects unreadable files and images too small for MS-SSIM."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except OSError as exc:  # includes PIL.UnidentifiedImageError
        raise ValueError(f"{path}: not a readable image ({exc})") from None
    if min(w, h) < MIN_SIDE_PX:
        raise ValueError(
            f"{path}: {w}x{h} is too small; MS-SSIM needs both sides >= {MIN_SIDE_PX} px"
        )
    return w, h


def load_checked_image(path: Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB (:func:`textboost.codec.image.load_image`), refused
    unless it is at least MIN_SIDE_PX on each side."""
    check_image(path)
    return load_image(path)


def _point(
    target: float, budget: int, img: np.ndarray, data: bytes, recon: np.ndarray, **extra: Any
) -> dict[str, Any]:
    h, w = img.shape[:2]
    return {
        "target_bpp": target,
        "budget_bytes": budget,
        "fit": True,
        "bytes": len(data),
        "bpp": bpp_of(len(data), w, h),
        "psnr_db": psnr_db(img, recon),
        "ms_ssim": ms_ssim(img, recon),
        **extra,
    }


def _no_point(target: float, budget: int, reason: str) -> dict[str, Any]:
    return {"target_bpp": target, "budget_bytes": budget, "fit": False, "reason": reason}


_OURS: Any = None  # one loaded model per worker process


def _evaluate_ours(img: np.ndarray, targets: Sequence[float]) -> dict[str, Any]:
    global _OURS
    if _OURS is None:
        from textboost.eval.ours import OursEntrant

        _OURS = OursEntrant()
    h, w = img.shape[:2]
    points = []
    for t in targets:
        budget = budget_bytes(t, w, h)
        try:
            data = _OURS.encode(img, budget)
        except BudgetError as exc:
            points.append(_no_point(t, budget, str(exc)))
            continue
        points.append(_point(t, budget, img, data, _OURS.decode(data)))
    return {"points": points, "settings": _OURS.settings}


def evaluate_image(
    path: Path, codec: str, targets: Sequence[float], divisors: Sequence[float]
) -> dict[str, Any]:
    """All target points of one codec on one image."""
    img = load_checked_image(path)
    t0 = time.perf_counter()
    if codec == OURS_NAME:
        out = _evaluate_ours(img, targets)
    else:
        c = get_baseline(codec)
        h, w = img.shape[:2]
        budgets = [budget_bytes(t, w, h) for t in targets]
        search = search_budgets(img, c, budgets, divisors)
        points = []
        for t, b, cand in zip(targets, budgets, search.best, strict=True):
            if cand is None:
                points.append(_no_point(t, b, "no quality x downscale candidate fits"))
                continue
            recon = reconstruct(c, cand, (w, h))
            points.append(
                _point(
                    t,
                    b,
                    img,
                    cand.data,
                    recon,
                    quality=cand.quality,
                    downscale=cand.divisor,
                    coded_size=list(cand.coded_size),
                )
            )
        out = {
            "points": points,
            "n_encodes": search.n_encodes,
            "monotonicity_violations": search.monotonicity_violations,
        }
    out["wall_s"] = time.perf_counter() - t0
    return out


def _average(
    per_image: dict[str, dict[str, Any]], targets: Sequence[float]
) -> list[dict[str, Any]]:
    rows = []
    n = len(per_image)
    for k, t in enumerate(targets):
        pts = [r["points"][k] for r in per_image.values() if r["points"][k]["fit"]]
        row: dict[str, Any] = {"target_bpp": t, "n_images": n, "n_fit": len(pts)}
        row["complete"] = len(pts) == n
        if pts:
            row["bpp"] = float(np.mean([p["bpp"] for p in pts]))
            row["psnr_db"] = float(np.mean([p["psnr_db"] for p in pts]))
            row["ms_ssim"] = float(np.mean([p["ms_ssim"] for p in pts]))
        rows.append(row)
    return rows


def _complete_curve(
    entry: dict[str, Any], window: tuple[float, float] | None
) -> tuple[list[float], list[float]]:
    pts = [
        r
        for r in entry["average"]
        if r["complete"] and (window is None or window[0] <= r["target_bpp"] <= window[1])
    ]
    return [r["bpp"] for r in pts], [r["psnr_db"] for r in pts]


def bd_against_anchor(
    codecs: dict[str, Any],
    anchor: str = BD_ANCHOR,
    window: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """BD-rate (%) and BD-PSNR (dB) of every codec against `anchor`, both fit methods.

    ``window`` keeps only the points whose target bpp lies in it (both ends included).
    """
    if anchor not in codecs:
        return {}
    ra, pa = _complete_curve(codecs[anchor], window)
    out: dict[str, Any] = {}
    for name, entry in codecs.items():
        if name == anchor:
            continue
        rb, pb = _complete_curve(entry, window)
        res: dict[str, Any] = {"anchor": anchor}
        for method in ("cubic", "pchip"):
            # Each figure on its own: PSNR ranges may not overlap where rate ranges do.
            res[method] = {}
            for key, fn in (("bd_rate_pct", bd_rate), ("bd_psnr_db", bd_psnr)):
                try:
                    res[method][key] = fn(ra, pa, rb, pb, method=method)
                except ValueError as exc:
                    res[method][f"{key}_error"] = str(exc)
        out[name] = res
    return out


def _dataset_record(dataset: Path, images: list[Path], sizes: dict[str, tuple[int, int]]) -> dict:
    return {
        "path": str(dataset),
        "images": [
            {"file": p.name, "width": sizes[p.name][0], "height": sizes[p.name][1]} for p in images
        ],
    }


def run_rd(
    dataset: Path,
    config: RdConfig,
    progress: Callable[[int, int, str], None] | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Evaluate `config.codecs` on every PNG of `dataset`; returns the result document.

    `progress(done, total, message)` is called after each (image, codec) job.
    """
    images = list_images(dataset)[:limit]
    sizes = {p.name: check_image(p) for p in images}
    codecs: list[str] = []
    unavailable: dict[str, str] = {}
    for c in config.codecs:
        if c == OURS_NAME:
            codecs.append(c)
            continue
        try:
            get_baseline(c)
            codecs.append(c)
        except CodecUnavailableError as exc:
            unavailable[c] = str(exc)
    jobs = [(p, c) for c in codecs for p in images]
    results: dict[str, dict[str, Any]] = {c: {} for c in codecs}
    t0 = time.perf_counter()
    ctx = get_context("spawn")  # fresh interpreters: no torch or codec state forked across
    with ProcessPoolExecutor(max_workers=config.workers, mp_context=ctx) as pool:
        futures = {
            pool.submit(evaluate_image, p, c, config.bpp_targets, config.divisors_for(c)): (p, c)
            for p, c in jobs
        }
        for fut in as_completed(futures):
            p, c = futures[fut]
            try:
                results[c][p.name] = fut.result()
            except Exception as exc:
                for other in futures:
                    other.cancel()
                raise RuntimeError(f"{c} failed on {p}: {exc}") from exc
            if progress:
                done = sum(len(r) for r in results.values())
                progress(done, len(jobs), f"{c} {p.name} {results[c][p.name]['wall_s']:.1f}s")
    wall_s = time.perf_counter() - t0
    run = {
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_s": wall_s,
        "workers": config.workers,
        "machine": machine_info(),
        "versions": library_versions(),
        "code": code_version(),
    }
    entries: dict[str, Any] = {}
    for c in codecs:
        per_image = {p.name: results[c][p.name] for p in images}
        if c == OURS_NAME:
            label, settings = "TextBoost (ours)", next(iter(per_image.values()))["settings"]
            for r in per_image.values():
                r.pop("settings")
        else:
            b = get_baseline(c)
            label, settings = (
                b.label,
                {
                    **b.settings,
                    "downscale_divisors": list(config.divisors_for(c)),
                    "quality_range": [b.quality_min, b.quality_max],
                    "upscale": "Lanczos (Pillow)",
                    "downscale": "Lanczos (Pillow)",
                },
            )
        entries[c] = {
            "label": label,
            "settings": settings,
            "run": run,
            "images": per_image,
            "average": _average(per_image, config.bpp_targets),
        }
    doc = {
        "schema": SCHEMA,
        "dataset": _dataset_record(dataset, images, sizes),
        "bpp_targets": list(config.bpp_targets),
        "budget_rule": "budget_bytes = floor(bpp * W * H / 8); a point counts the whole file",
        "codecs": entries,
        "unavailable": unavailable,
    }
    doc.update(_bd_fields(entries))
    return doc


def _bd_fields(codecs: dict[str, Any]) -> dict[str, Any]:
    """BD over every complete point, and over the target window ``BD_WINDOW``."""
    return {
        "bd": bd_against_anchor(codecs),
        "bd_window": {
            "target_bpp": list(BD_WINDOW),
            "codecs": bd_against_anchor(codecs, window=BD_WINDOW),
        },
    }


def merge_results(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`old` with the codecs of `new` added or replaced; both must cover the same images."""
    if old.get("schema") != SCHEMA:
        raise ValueError(
            f"cannot merge: existing file has schema {old.get('schema')!r}, expected {SCHEMA!r}"
        )
    if old["dataset"]["images"] != new["dataset"]["images"]:
        raise ValueError("cannot merge: the existing file covers a different set of images")
    codecs = {**old["codecs"], **new["codecs"]}
    unavailable = {
        k: v for k, v in {**old["unavailable"], **new["unavailable"]}.items() if k not in codecs
    }
    targets = sorted({*old["bpp_targets"], *new["bpp_targets"]})
    return {
        **old,
        "bpp_targets": targets,
        "codecs": codecs,
        "unavailable": unavailable,
        **_bd_fields(codecs),
    }


def summarise(doc: dict[str, Any]) -> dict[str, Any]:
    """Averages and BD figures only: the part worth printing."""
    return {
        "schema": doc["schema"],
        "n_images": len(doc["dataset"]["images"]),
        "averages": {c: e["average"] for c, e in doc["codecs"].items()},
        "bd": doc["bd"],
        "bd_window": doc.get("bd_window"),
        "unavailable": doc["unavailable"],
    }


def write_json(doc: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
