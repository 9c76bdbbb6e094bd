"""From mission results to figures: per-image rows, per-run metrics, Monte Carlo means
with 95 % confidence intervals, and the JSON and CSV files.

Nothing here reads a wall clock: the same scenario and seed give byte-identical files.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from link_sim.parameters import scenario_parameters
from link_sim.records import ImageTrace, MissionResult
from link_sim.scenario import image_paths
from link_sim.verdict import judge
from textboost.bitstream.container import Container, SectionKind

__all__ = [
    "image_rows",
    "mean_ci95",
    "run_metrics",
    "summarize",
    "write_csv",
    "write_json",
]

LATENCY_PARTS = ("encode", "queue", "air", "retransmission", "decode")
TEXT_OFF_NOTE = "text path off (text_path: false): images carry no words"
SYNTHETIC_TEXT_NOTE = (
    "text F1: not measured (synthetic payloads: the text section carries one placeholder "
    "word and no image is decoded)"
)

# Two-sided 95 % Student t quantiles t_{0.975, df} for df = 1..30 (standard tables).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of its 95 % confidence interval (Student t; 0 for one run)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1:
        return float(x[0]), 0.0
    t = _T975[x.size - 2] if x.size - 1 <= len(_T975) else 1.960
    return float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(x.size))


def _status(r: ImageTrace) -> str:
    if r.dropped:
        return "dropped"
    if r.encode_done_s is None:
        return "encoding"
    if r.delivered_s is not None:
        return "delivered"
    if r.decoded_sections:
        return "partial"
    if r.failed:
        return "failed"
    return "in flight" if r.first_byte_s is not None else "queued"


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def _f1(counts: tuple[int, int, int] | None) -> float | None:
    """F1 of (tp, n_gt, n_det) summed over images (the ICDAR "method" figure)."""
    if counts is None:
        return None
    tp, n_gt, n_det = counts
    p = tp / n_det if n_det else 0.0
    r = tp / n_gt if n_gt else 0.0
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _sum_counts(items: list[tuple[int, int, int] | None]) -> tuple[int, int, int] | None:
    got = [c for c in items if c is not None]
    return tuple(int(sum(x)) for x in zip(*got, strict=True)) if got else None  # type: ignore[return-value]


def image_rows(result: MissionResult) -> list[dict[str, Any]]:
    rows = []
    for r in result.records:
        split = r.latency_split() or {}
        sd = r.section_delivered_s
        rows.append(
            {
                "index": r.index,
                "image": r.image,
                "status": _status(r),
                "capture_s": _r(r.capture_s),
                "encode_done_s": _r(r.encode_done_s),
                "first_byte_s": _r(r.first_byte_s),
                "header_delivered_s": _r(sd[SectionKind.TEXT]) if sd else None,
                "text_delivered_s": _r(r.text_delivered_s),
                "z_delivered_s": _r(sd[SectionKind.Z]) if len(sd) > SectionKind.Z else None,
                "groups_delivered_s": [_r(t) for t in sd[SectionKind.Y :]],
                "delivered_s": _r(r.delivered_s),
                "decoded_s": _r(r.decoded_s),
                "decoded_groups": Container.groups_in(r.decoded_sections),
                "n_groups": Container.groups_in(len(r.section_bytes)),
                "latency_s": _r(r.latency_s),
                "time_to_first_word_s": _r(r.time_to_first_word_s),
                "time_to_text_s": _r(r.time_to_text_s),
                "time_to_first_image_s": _r(r.time_to_first_image_s),
                "time_to_image_s": _r(r.time_to_image_s),
                **{f"{k}_s": _r(split.get(k)) for k in LATENCY_PARTS},
                "codec_bytes": r.bundle_bytes,
                "codec_bpp": _r(r.codec_bpp, 5),
                "on_air_bytes": r.on_air_bytes,
                "on_air_bpp": _r(r.on_air_bpp, 5),
                "header_bytes": r.header_bytes,
                "fec_bytes": r.fec_bytes,
                "retransmission_bytes": r.retransmission_bytes,
                "psnr_db": _r(r.psnr_db, 3),
                "text_bytes": r.text_bytes,
                "text_strings": r.text_strings,
                "text_words": r.text_words,
                "det_f1": _r(_f1(r.text_det), 4),
                "e2e_f1": _r(_f1(r.text_e2e), 4),
                "e2e_f1_original": _r(_f1(r.text_e2e_original), 4),
                "e2e_f1_words": _r(_f1(r.text_e2e_words), 4),
                "note": r.dropped or r.failed or r.decode_note or _text_note(r),
                "decoded_image": r.decoded_image,
            }
        )
    return rows


def _text_note(r: ImageTrace) -> str | None:
    return f"text section unreadable: {r.text_error}" if r.text_error else None


def _percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else math.nan


def run_metrics(result: MissionResult) -> dict[str, float]:
    """One number per figure for one run (Monte Carlo averages these)."""
    recs = result.records
    s = result.scenario
    encoded = [r for r in recs if r.bundle_bytes is not None]
    delivered = [r for r in recs if r.delivered_s is not None]
    decoded = [r for r in recs if r.decoded_sections]
    lat = [r.latency_s for r in delivered if r.latency_s is not None]
    splits = [x for r in delivered if (x := r.latency_split())]
    psnr = [r.psnr_db for r in recs if r.psnr_db is not None]
    fwd = result.forward.log
    contact_s = result.contacts.open_seconds(0.0, s.duration_s)
    st = result.uplink.sender.stats
    nan = math.nan

    def mean(xs: list[float]) -> float:
        return float(np.mean(xs)) if xs else nan

    m: dict[str, float] = {
        "images_captured": len(recs),
        "images_encoded": len(encoded),
        "images_dropped": sum(r.dropped is not None for r in recs),
        "images_delivered": len(delivered),
        "images_decoded": len(decoded),
        "delivered_fraction": len(delivered) / len(recs) if recs else nan,
        "latency_mean_s": mean(lat),
        "latency_p50_s": float(np.percentile(lat, 50)) if lat else nan,
        "latency_p95_s": float(np.percentile(lat, 95)) if lat else nan,
        "latency_max_s": max(lat) if lat else nan,
    }
    if s.targets is not None and s.targets.deadline_s is not None:
        m["images_on_time"] = sum(x <= s.targets.deadline_s for x in lat)
    to_text = [t for r in recs if (t := r.time_to_text_s) is not None]
    to_word = [t for r in recs if (t := r.time_to_first_word_s) is not None]
    to_first = [t for r in recs if (t := r.time_to_first_image_s) is not None]
    to_image = [t for r in recs if (t := r.time_to_image_s) is not None]
    m |= {
        "text_latency_mean_s": mean(to_text),
        "text_latency_p50_s": _percentile(to_text, 50),
        "text_latency_p95_s": _percentile(to_text, 95),
        "first_word_latency_p50_s": _percentile(to_word, 50),
        "first_word_latency_p95_s": _percentile(to_word, 95),
        "first_image_latency_p50_s": _percentile(to_first, 50),
        "image_latency_p50_s": _percentile(to_image, 50),
        "text_bytes_mean": mean([r.text_bytes for r in encoded if r.text_bytes is not None]),
        "words_delivered": sum(len(r.text_strings or ()) for r in recs),
    }
    for key, attr in (("text_det_f1", "text_det"), ("text_e2e_f1", "text_e2e"),
                      ("text_e2e_f1_original", "text_e2e_original"),
                      ("text_e2e_f1_words", "text_e2e_words")):
        f1 = _f1(_sum_counts([getattr(r, attr) for r in recs]))
        m[key] = nan if f1 is None else f1
    for part in LATENCY_PARTS:
        m[f"{part}_mean_s"] = mean([x[part] for x in splits])
    m |= {
        "codec_bpp_mean": mean([r.codec_bpp for r in encoded]),
        "on_air_bpp_mean": mean([r.on_air_bpp for r in encoded if r.first_byte_s is not None]),
        "psnr_mean_db": mean(psnr),
        "payload_bytes": st.payload_bytes,
        "header_bytes": st.header_bytes,
        "fec_bytes": st.fec_bytes,
        "retransmission_bytes": st.retransmission_bytes,
        "reverse_bytes": sum(result.reverse.log.n_bytes) if result.reverse else 0,
        "protocol_efficiency": st.efficiency,
        "frames_sent": fwd.frames,
        "frame_loss_rate": sum(fwd.lost) / fwd.frames if fwd.frames else nan,
        "contact_s": contact_s,
        "utilisation": fwd.busy_s / contact_s if contact_s else nan,
        "reverse_utilisation": (
            result.reverse.log.busy_s / contact_s if result.reverse and contact_s else nan
        ),
        "capacity_bps": 8 * result.capacity_Bps,
        "delivered_bps": 8 * sum(r.bundle_bytes or 0 for r in delivered) / s.duration_s,
    }
    return m


def summarize(results: list[MissionResult]) -> dict[str, dict[str, float]]:
    """Per metric: mean and 95 % CI half-width over the runs (a count whose mean is whole
    stays an integer)."""
    per_run = [run_metrics(r) for r in results]
    out = {}
    for key in per_run[0]:
        values = [m[key] for m in per_run]
        mean, ci = mean_ci95(values)
        if all(isinstance(v, int) for v in values) and float(mean).is_integer():
            mean = int(mean)
        out[key] = {"mean": _clean(mean), "ci95": _clean(ci)}
    return out


def _clean(x: float) -> float | int | None:
    if isinstance(x, int):
        return x
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def report_dict(results: list[MissionResult], scenario_file: str) -> dict[str, Any]:
    first = results[0]
    s = first.scenario
    notes = [] if s.text_path else [TEXT_OFF_NOTE]
    notes += _text_f1_notes(first)
    if s.decode_every > 1:
        notes.append(f"quality sampled: every {s.decode_every}th delivered image is decoded")
    windows = first.contacts.windows
    per_run = [run_metrics(r) for r in results]
    parameters = scenario_parameters(s, None if windows is None else list(windows))
    return {
        "scenario": s.name,
        "file": scenario_file,
        "description": s.description,
        "seed": s.seed,
        "runs": len(results),
        "duration_s": s.duration_s,
        "codec": first.codec_name,
        "arq": s.arq,
        "text_path": "on" if s.text_path else "off",
        "notes": notes,
        "verdict": judge(s, per_run),
        "parameters": [[group, [list(row) for row in rows]] for group, rows in parameters],
        "targets": None if s.targets is None else s.targets.model_dump(),
        "summary": summarize(results),
        "per_run": [{k: _clean(v) for k, v in m.items()} for m in per_run],
        "contacts": None if windows is None else [[_r(a), _r(b)] for a, b in windows],
        "images": image_rows(first),
    }


def _text_f1_notes(result: MissionResult) -> list[str]:
    """How text F1 was measured, or why not."""
    if result.synthetic:
        return [SYNTHETIC_TEXT_NOTE]
    from textboost.scenetext.gt import read_gt

    paths = image_paths(result.scenario)
    with_gt = [p for p in paths if read_gt(p) is not None]
    src = result.scenario.images
    where = f"images.set {src.set}" if src.set else f"images.folder {src.folder}"
    if not with_gt:
        return [
            f"text F1: not available, no ground-truth text for these images ({where}); "
            "DET/E2E F1 need an ICDAR 2015 gt_<image>.txt beside each original "
            "(images.set: kodak_text ships them)"
        ]
    notes = [
        "text F1: the spotter (RapidOCR PP-OCRv4) on each decoded image against the ground "
        "truth, ICDAR 2015 protocol (IoU > 0.5; E2E also the transcription); counts summed "
        "over images; e2e_f1_original: the same spotter on the original; e2e_f1_words: the "
        "words the text section carried (spotted and filtered on the edge: small text only)"
    ]
    if len(with_gt) < len(paths):
        notes.append(f"text F1: {len(paths) - len(with_gt)} of {len(paths)} images have no "
                     "ground truth and are not scored")
    return notes


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=1, sort_keys=False) + "\n")


_CSV_LEFT_OUT = ("text_words",)  # boxes: in report.json; the CSV has the strings


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    if not rows:
        path.write_text("")
        return
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[k for k in rows[0] if k not in _CSV_LEFT_OUT],
                           extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: ";".join(map(str, v)) if isinstance(v, list) else v
                        for k, v in row.items()})
