"""Detections against ground truth, per the ICDAR 2015 Robust Reading protocol (Challenge 4).

Detection (DET), as in the RRC script ``script.py`` of tasks 4.1 and 4.4:

- A detection is *ignored* (neither true nor false positive) when more than half of its
  area lies inside one don't-care (``###``) region: intersection / detection area > 0.5.
- Matching is greedy and one-to-one: for each care ground-truth word in file order, the first
  unmatched, not-ignored detection in spotter order with IoU > 0.5 (strictly, as the RRC
  script does) is matched to it. Polygon areas and intersections are exact (shapely); a
  self-intersecting quad is replaced by its convex hull.
- Precision = matches / not-ignored detections, recall = matches / care ground truth,
  F1 their harmonic mean; over a set the counts are summed first (the RRC "method" figures).

End to end (E2E), generic mode of task 4.4: the same geometric one-to-one matching; a match
counts only when the transcriptions agree. Both strings are NFKC-normalised (full-width forms
become ASCII), stripped of surrounding spaces and upper-cased, then compared exactly, except
that one special character ``!?.:,*"()·[]/'`` at the start and/or the end of the ground truth
may be missing from the detection (the RRC ``transcription_match``). Inner spaces count.
No dictionary and no minimum word length (those belong to the word-spotting mode).

Plates (``ignore_unannotated=True``): only one plate per photo is annotated, so detections that
do not touch any care ground-truth quad (intersection area 0) are ignored as well, instead of
counting as false positives, and E2E compares plate-normalised strings (NFKC, upper case,
letters and digits only: the annotations carry no spaces or dashes, "M5-XSX" reads
"M5XSX"). A plate is *read* when the plate-normalised text of one detection touching it, or
of all detections touching it joined left to right, equals the plate string.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from shapely.geometry import Polygon

from textboost.scenetext.gt import GtWord
from textboost.text.words import Word

__all__ = [
    "DONT_CARE_AREA",
    "IOU_THRESHOLD",
    "SPECIAL_CHARACTERS",
    "Counts",
    "ImageMatch",
    "match_image",
    "normalise_plate",
    "normalise_text",
    "plate_read",
    "touching",
    "transcription_match",
]

IOU_THRESHOLD = 0.5
DONT_CARE_AREA = 0.5
SPECIAL_CHARACTERS = "!?.:,*\"()·[]/'"


@dataclass(frozen=True)
class Counts:
    """Matches, care ground truth and counted detections; summed over images."""

    tp: int = 0
    n_gt: int = 0
    n_det: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.n_gt + other.n_gt, self.n_det + other.n_det)

    @property
    def precision(self) -> float:
        return self.tp / self.n_det if self.n_det else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.n_gt if self.n_gt else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "tp": self.tp,
            "n_gt": self.n_gt,
            "n_det": self.n_det,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


@dataclass(frozen=True)
class ImageMatch:
    """The outcome on one image: DET and E2E counts, the pairs, the ignored detections."""

    det: Counts
    e2e: Counts
    pairs: tuple[tuple[int, int, bool], ...] = ()  # (gt index, detection index, text correct)
    ignored: tuple[int, ...] = ()
    plate_read: bool | None = None  # None: not a plate image


def _polygon(quad: np.ndarray) -> Polygon:
    poly = Polygon(np.asarray(quad, dtype=np.float64))
    return poly if poly.is_valid else poly.convex_hull


def _intersection(a: Polygon, b: Polygon) -> float:
    return float(a.intersection(b).area) if a.intersects(b) else 0.0


def iou(a: Polygon, b: Polygon) -> float:
    inter = _intersection(a, b)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def normalise_text(s: str) -> str:
    """NFKC, surrounding spaces stripped, upper case (the E2E comparison form)."""
    return unicodedata.normalize("NFKC", s).strip().upper()


def transcription_match(gt: str, det: str) -> bool:
    """Case-insensitive equality; a special character first and/or last in ``gt`` may be
    missing from ``det`` (ICDAR 2015 ``transcription_match``, ONLY_REMOVE_FIRST_LAST)."""
    g, d = normalise_text(gt), normalise_text(det)
    if g == d:
        return True
    if not g:
        return False
    first, last = g[0] in SPECIAL_CHARACTERS, g[-1] in SPECIAL_CHARACTERS
    return (
        (first and g[1:] == d)
        or (last and g[:-1] == d)
        or (first and last and len(g) > 1 and g[1:-1] == d)
    )


def normalise_plate(s: str) -> str:
    """NFKC, upper case, letters and digits only: ``"m5-xsx "`` → ``"M5XSX"``."""
    return "".join(c for c in unicodedata.normalize("NFKC", s).upper() if c.isalnum())


def touching(word: GtWord, dets: Sequence[Word]) -> list[Word]:
    """The detections that overlap ``word`` (intersection area > 0), left to right."""
    pg = _polygon(word.quad)
    out = [d for d in dets if _intersection(pg, _polygon(d.quad)) > 0]
    return sorted(out, key=lambda d: float(np.mean(d.quad[:, 0])))


def plate_read(plate: GtWord, dets: Sequence[Word]) -> bool:
    """Whether the detections touching ``plate`` read it exactly (one alone, or all of them
    joined in left-to-right order of their centres)."""
    target = normalise_plate(plate.text)
    near = touching(plate, dets)
    if any(normalise_plate(d.text) == target for d in near):
        return True
    return len(near) > 1 and "".join(normalise_plate(d.text) for d in near) == target


def match_image(
    gt: Sequence[GtWord], dets: Sequence[Word], ignore_unannotated: bool = False
) -> ImageMatch:
    """DET and E2E counts of one image's detections (see the module docstring)."""
    gpolys = [_polygon(g.quad) for g in gt]
    dpolys = [_polygon(d.quad) for d in dets]
    dont_care = [p for p, g in zip(gpolys, gt, strict=True) if not g.care]
    care = [p for p, g in zip(gpolys, gt, strict=True) if g.care]
    ignored: list[int] = []
    for j, dp in enumerate(dpolys):
        area = dp.area
        in_dont_care = any(
            area > 0 and _intersection(dc, dp) / area > DONT_CARE_AREA for dc in dont_care
        )
        unannotated = ignore_unannotated and not any(_intersection(cp, dp) > 0 for cp in care)
        if in_dont_care or unannotated:
            ignored.append(j)
    skip = set(ignored)
    det_used = [False] * len(dets)
    pairs: list[tuple[int, int, bool]] = []
    for i, (g, gp) in enumerate(zip(gt, gpolys, strict=True)):
        if not g.care:
            continue
        for j, dp in enumerate(dpolys):
            if det_used[j] or j in skip:
                continue
            if iou(gp, dp) > IOU_THRESHOLD:
                det_used[j] = True
                if ignore_unannotated:  # plate strings are stored without separators
                    ok = normalise_plate(g.text) == normalise_plate(dets[j].text)
                else:
                    ok = transcription_match(g.text, dets[j].text)
                pairs.append((i, j, ok))
                break
    n_gt = sum(g.care for g in gt)
    n_det = len(dets) - len(skip)
    det = Counts(len(pairs), n_gt, n_det)
    e2e = Counts(sum(ok for _, _, ok in pairs), n_gt, n_det)
    read = None
    if ignore_unannotated:
        plates = [g for g in gt if g.care]
        read = bool(plates) and all(plate_read(p, dets) for p in plates)
    return ImageMatch(det, e2e, tuple(pairs), tuple(ignored), read)
