"""The verdict at the top of the report: delivered / captured, latency p50 and p95, time to
the words, legibility, each judged against the scenario's own targets in every run (a
mission plan has to hold on a bad day, not on the average one)."""

from __future__ import annotations

import math
from typing import Any

from link_sim.parameters import duration
from link_sim.scenario import Scenario

__all__ = ["judge"]


def _finite(xs: list[float | None]) -> list[float]:
    return [float(x) for x in xs if x is not None and math.isfinite(x)]


def _mean(xs: list[float | None]) -> float:
    got = _finite(xs)
    return sum(got) / len(got) if got else math.nan


def _check(label: str, value: str, target: str | None = None, ok: bool | None = None,
           detail: str = "") -> dict[str, Any]:
    return {"label": label, "value": value, "target": target, "ok": ok, "detail": detail}


def _over(runs: int) -> str:
    return "one run" if runs == 1 else f"mean of {runs} runs"


def judge(scenario: Scenario, per_run: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"ok": True/False/None (no targets), "checks": [...]}`` from per-run metrics."""
    t = scenario.targets
    n = len(per_run)
    checks = [
        _delivered(per_run, t.deadline_s if t else None, t.min_delivered_share if t else None),
        _latency(per_run, t.deadline_s if t else None),
    ]
    text_deadline = t.text_deadline_s if t else None
    word_deadline = t.first_word_deadline_s if t else None
    min_f1 = t.min_words_f1 if t else None
    if scenario.text_path:
        checks.append(_words_time(per_run, word_deadline, first=True))
        checks.append(_words_time(per_run, text_deadline))
        checks.append(_legibility(per_run, min_f1))
    else:  # a sweep may turn the text path off: its targets are then missed, not dropped
        off = "text_path: false carries no words"
        for name, d in (("Time to first word", word_deadline), ("Time to text", text_deadline)):
            if d is not None:
                checks.append(_check(name, "text path off", f"p95 ≤ {duration(d)}", False, off))
        if min_f1 is not None:
            checks.append(_check("Legibility", "text path off", f"words F1 ≥ {min_f1:g}",
                                 False, off))
    judged = [c["ok"] for c in checks if c["ok"] is not None]
    return {"ok": all(judged) if judged else None, "runs": n, "checks": checks}


def _span(xs: list[int], of: int) -> str:
    return f"{min(xs)} / {of}" if min(xs) == max(xs) else f"{min(xs)}–{max(xs)} / {of}"


def _delivered(per_run: list[dict[str, Any]], deadline: float | None,
               share: float | None) -> dict[str, Any]:
    """Delivered / captured; with a deadline, the value is the photos decoded in time (what
    the target judges) and the detail says how many arrived at all."""
    n = len(per_run)
    captured = [int(m["images_captured"]) for m in per_run]
    got = [int(m["images_delivered"]) for m in per_run]
    cap = max(captured)
    every = "in every run" if n > 1 and min(got) == max(got) else (
        f"worst–best of {n} runs" if n > 1 else "")
    value, detail = _span(got, cap), f"delivered / captured {every}".strip()
    if deadline is not None:
        on_time = [int(m["images_on_time"]) for m in per_run]
        value = f"{_span(on_time, cap)} within {duration(deadline)}"
        detail = f"decoded within the deadline; delivered at all: {_span(got, cap)}" + (
            f" ({every})" if every else "")
    if share is None:
        return _check("Photos delivered", value, detail=detail)
    judged = on_time if deadline is not None else got
    worst = min(j / c if c else 0.0 for j, c in zip(judged, captured, strict=True))
    target = f"≥ {share:.0%}" + (f" within {duration(deadline)}" if deadline is not None else "")
    return _check("Photos delivered", value, target, worst >= share - 1e-12, detail)


def _latency(per_run: list[dict[str, Any]], deadline: float | None) -> dict[str, Any]:
    p50 = _mean([m["latency_p50_s"] for m in per_run])
    p95s = [m["latency_p95_s"] for m in per_run]
    value = f"p50 {duration(p50)} · p95 {duration(_mean(p95s))}"
    detail = f"capture → decoded at the ground, {_over(len(per_run))}"
    worst = max(_finite(p95s), default=math.nan)
    if len(per_run) > 1 and math.isfinite(worst):
        detail += f"; worst run p95 {duration(worst)}"
    if deadline is None:
        return _check("Photo latency", value, detail=detail)
    missing = len(_finite(p95s)) < len(per_run)
    if missing:
        detail += "; a run delivered nothing"
    ok = not missing and worst <= deadline
    return _check("Photo latency", value, f"p95 ≤ {duration(deadline)}", ok, detail)


def _words_time(
    per_run: list[dict[str, Any]], deadline: float | None, first: bool = False
) -> dict[str, Any]:
    key, name = ("first_word", "Time to first word") if first else ("text", "Time to text")
    p50 = _mean([m[f"{key}_latency_p50_s"] for m in per_run])
    p95s = [m[f"{key}_latency_p95_s"] for m in per_run]
    if not _finite(p95s):
        value = "no words landed"
    else:
        value = f"p50 {duration(p50)} · p95 {duration(_mean(p95s))}"
    what = "the first word readable" if first else "all words read from the checked text section"
    detail = f"capture → {what}, {_over(len(per_run))}"
    if deadline is None:
        return _check(name, value, detail=detail)
    ok = len(_finite(p95s)) == len(per_run) and max(_finite(p95s)) <= deadline
    return _check(name, value, f"p95 ≤ {duration(deadline)}", ok, detail)


def _legibility(per_run: list[dict[str, Any]], min_f1: float | None) -> dict[str, Any]:
    words = [m["text_e2e_f1_words"] for m in per_run]
    e2e = _mean([m["text_e2e_f1"] for m in per_run])
    det = _mean([m["text_det_f1"] for m in per_run])
    orig = _mean([m["text_e2e_f1_original"] for m in per_run])
    if not _finite(words):
        value = "not measured"
        detail = "needs the real codec and ground-truth text beside the images"
    else:
        value = f"words F1 {_mean(words):.2f}"
        detail = "E2E F1 (ICDAR 2015) of the words the text section carried"
        if math.isfinite(e2e):
            detail += (f"; the spotter on the decoded image: E2E {e2e:.2f}, DET {det:.2f}"
                       f" (on the original: E2E {orig:.2f})")
    if min_f1 is None:
        return _check("Legibility", value, detail=detail)
    ok = len(_finite(words)) == len(per_run) and min(_finite(words)) >= min_f1
    if len(per_run) > 1 and _finite(words):
        detail += f"; worst run {min(_finite(words)):.2f}"
    return _check("Legibility", value, f"words F1 ≥ {min_f1:g}", ok, detail)
