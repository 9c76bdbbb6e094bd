"""Every shipped preset carries photos with text and runs the text path, with targets for
the first word, all words and the picture (synthetic payloads: the link is under test)."""

from __future__ import annotations

import pytest
import yaml

from link_sim.codec_service import CodecService
from link_sim.mission import Mission
from link_sim.report import report_dict
from link_sim.scenario import parse_scenario
from tests.helpers import ROOT

PRESETS = sorted((ROOT / "scenarios").glob("*.yaml"))


def test_there_are_presets():
    assert len(PRESETS) >= 7


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_runs_the_text_path_and_reports_three_times(path, tmp_path):
    raw = yaml.safe_load(path.read_text())
    assert raw["text_path"] is True and raw["images"]["set"] == "kodak_text"
    targets = raw["targets"]
    for key in ("first_word_deadline_s", "text_deadline_s", "deadline_s"):
        assert key in targets, f"{path.name}: targets.{key}"
    assert targets["first_word_deadline_s"] <= targets["text_deadline_s"] <= targets["deadline_s"]
    raw["images"]["capture"]["count"] = 1  # small: one photo, one run
    raw["runs"] = 1
    scenario = parse_scenario(raw, path.name)
    res = Mission(scenario, CodecService(tmp_path / "cache", synthetic=True)).run()
    (r,) = res.records
    assert r.time_to_first_word_s is not None, f"{path.name}: no word landed"
    assert r.time_to_first_word_s <= r.time_to_text_s
    if r.time_to_image_s is not None:
        assert r.time_to_text_s < r.time_to_image_s
    rep = report_dict([res], path.stem)
    row = rep["images"][0]
    assert row["time_to_first_word_s"] == pytest.approx(r.time_to_first_word_s, abs=0.01)
    names = [c["label"] for c in rep["verdict"]["checks"]]
    assert "Time to first word" in names and "Time to text" in names
