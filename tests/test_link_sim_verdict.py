"""The report's verdict and parameters: scenario targets validate in one line, each figure
is judged in every run (the worst run decides), counts stay integers, and a synthetic run
(nothing decoded) still writes a page with its verdict."""

from __future__ import annotations

import copy
import json
import math

import pytest
import yaml

from link_sim.codec_service import CodecService
from link_sim.html_report import write_html
from link_sim.mission import Mission
from link_sim.report import report_dict
from link_sim.scenario import ScenarioError, parse_scenario
from link_sim.verdict import judge
from tests.helpers import ROOT

RESCUE = yaml.safe_load((ROOT / "scenarios/rescue.yaml").read_text())


def _scenario(targets, text_path=True, **extra):
    raw = copy.deepcopy(RESCUE)
    raw["targets"] = targets
    raw["text_path"] = text_path
    raw.update(extra)
    return parse_scenario(raw, "t.yaml")


@pytest.mark.parametrize(("targets", "text_path", "expected"), [
    ({}, True, "t.yaml: targets: empty: expected at least one of deadline_s"),
    ({"deadline_s": 0}, True, "t.yaml: targets.deadline_s: expected a number > 0, got 0"),
    ({"min_delivered_share": 1.5}, True,
     "targets.min_delivered_share: expected a number <= 1, got 1.5"),
    ({"deadline": 10}, True, "t.yaml: targets.deadline: unknown key"),
])
def test_bad_targets_are_one_line_errors(targets, text_path, expected):
    with pytest.raises(ScenarioError) as exc:
        _scenario(targets, text_path)
    assert expected in str(exc.value) and "\n" not in str(exc.value)


def _run(delivered, p95, text_p95=5.0, words=0.6, on_time=None):
    m = {"images_captured": 10, "images_delivered": delivered, "latency_p50_s": p95 / 2,
         "latency_p95_s": p95, "text_latency_p50_s": 4.0, "text_latency_p95_s": text_p95,
         "first_word_latency_p50_s": 2.0, "first_word_latency_p95_s": text_p95 / 2,
         "text_e2e_f1_words": words, "text_e2e_f1": 0.4, "text_det_f1": 0.7,
         "text_e2e_f1_original": 0.8}
    if on_time is not None:
        m["images_on_time"] = on_time
    return m


def test_the_worst_run_decides():
    s = _scenario({"deadline_s": 60, "min_delivered_share": 0.9, "text_deadline_s": 10,
                   "first_word_deadline_s": 5, "min_words_f1": 0.5})
    good = judge(s, [_run(10, 40, on_time=10), _run(10, 50, on_time=9)])
    assert good["ok"] is True and [c["ok"] for c in good["checks"]] == [True] * 5
    # the value is what the target judges: photos decoded within the deadline
    assert good["checks"][0]["value"] == "9–10 / 10 within 60.0 s"
    assert "delivered at all: 10 / 10 (in every run)" in good["checks"][0]["detail"]
    bad = judge(s, [_run(10, 40, on_time=10), _run(9, 70, text_p95=12, words=0.4, on_time=8)])
    assert bad["ok"] is False and [c["ok"] for c in bad["checks"]] == [False] * 5
    assert bad["checks"][0]["value"] == "8–10 / 10 within 60.0 s"  # integers, worst–best
    assert "delivered at all: 9–10 / 10 (worst–best of 2 runs)" in bad["checks"][0]["detail"]
    assert "worst run p95 70.0 s" in bad["checks"][1]["detail"]


def test_text_targets_with_the_text_path_off_are_missed():
    s = _scenario({"text_deadline_s": 30, "min_words_f1": 0.5}, text_path=False)
    v = judge(s, [_run(10, 40)])
    assert [(c["label"], c["ok"]) for c in v["checks"][2:]] == [
        ("Time to text", False), ("Legibility", False)]
    assert v["ok"] is False


def test_nothing_delivered_fails_a_deadline_and_no_targets_judges_nothing():
    s = _scenario({"deadline_s": 60})
    v = judge(s, [_run(0, math.nan, on_time=0)])
    assert v["ok"] is False and "delivered nothing" in v["checks"][1]["detail"]
    free = judge(_scenario({"deadline_s": 60}).model_copy(update={"targets": None}),
                 [_run(10, 40)])
    assert free["ok"] is None and all(c["ok"] is None for c in free["checks"])
    assert free["checks"][0]["value"] == "10 / 10"


def test_synthetic_run_report_has_verdict_parameters_and_integer_counts(tmp_path):
    fast = {"rate_bps": 9600, "delay_s": 0.01, "mtu_bytes": 256}
    s = _scenario({"deadline_s": 600, "min_delivered_share": 1.0}, text_path=False,
                  duration_s=120, link={"forward": fast, "reverse": dict(fast)},
                  images={"set": "kodak", "capture": {"start_s": 0, "interval_s": 30,
                                                      "count": 3}})
    codec = CodecService(tmp_path / "cache", synthetic=True)
    results = [Mission(s, codec, k).run() for k in range(2)]
    rep = json.loads(json.dumps(report_dict(results, "t.yaml")))
    assert rep["verdict"]["ok"] is True
    assert [c["label"] for c in rep["verdict"]["checks"]] == ["Photos delivered", "Photo latency"]
    assert rep["summary"]["images_captured"] == {"mean": 3, "ci95": 0.0}
    assert isinstance(rep["per_run"][0]["frames_sent"], int)
    groups = dict((g, dict(rows)) for g, rows in rep["parameters"])
    assert groups["Forward link"]["PHY"] == "9600 bit/s"
    assert groups["Targets"]["delivered"] == "≥ 100% of captured"
    path = tmp_path / "report.html"
    write_html(rep, {}, {}, path)
    html = path.read_text()
    assert "PASS: all 2 targets met in every run" in html
    assert "No decoded images" in html and "exactly 0" in html  # the CI-of-0 explanation


def test_parameters_of_a_lora_preset_and_a_pass_plan():
    from link_sim.parameters import duration, scenario_parameters
    from link_sim.scenario import load_scenario

    groups = dict(scenario_parameters(load_scenario(ROOT / "scenarios/lora_eu868.yaml"), None))
    fwd = dict(groups["Forward link"])
    assert fwd["PHY"] == "LoRa SF12 / 125 kHz, CR 4/5"
    assert fwd["duty cycle"] == "1.0% (sliding window 60.0 min)"
    rev = dict(groups["Reverse link"])
    assert rev["duty cycle"] == "10.0% (off after each frame for 9× its airtime)"
    assert fwd["contacts"] == "always up" and "Targets" in groups
    hf = load_scenario(ROOT / "scenarios/hf_ale.yaml")
    windows = [(0.0, 600.0), (3600.0, 4200.0)]
    fwd = dict(dict(scenario_parameters(hf, windows))["Forward link"])
    assert fwd["contacts"].startswith("2 windows, 20.0 min open in")
    assert [duration(x) for x in (46.6, 750, 11880)] == ["46.6 s", "12.5 min", "3.3 h"]
