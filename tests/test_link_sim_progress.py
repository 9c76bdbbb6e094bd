"""`python -m link_sim FILE` on a terminal: the run's bar says what the codec is doing
(the first run of a scenario spends its time encoding, decoding and reading text)."""

from __future__ import annotations

import io

import yaml

from link_sim.codec_service import CodecService
from link_sim.runner import run_scenario
from link_sim.scenario import load_scenario
from tests.helpers import ROOT


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _scenario(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes((ROOT / "link_sim/data/kodak/kodim20.png").read_bytes())
    raw = yaml.safe_load((ROOT / "scenarios/rescue.yaml").read_text())
    raw.update(duration_s=120, runs=1, text_path=False)
    raw["images"] = {"folder": "photos", "capture": {"start_s": 1.0, "interval_s": 30.0,
                                                     "count": 2}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_scenario(path)


def test_single_run_bar_names_the_codec_work(tmp_path, monkeypatch):
    term = _Terminal()
    monkeypatch.setattr("sys.stderr", term)
    codec = CodecService(tmp_path / "cache", synthetic=True)
    [result] = run_scenario(_scenario(tmp_path), codec, 1, progress=True)
    out = term.getvalue()
    assert "sim s" in out and "encoding a.png" in out
    assert codec.activity is None  # unhooked after the run
    assert result is not None


def test_activity_is_told_when_work_starts_and_ends(tmp_path):
    seen: list[str] = []
    codec = CodecService(tmp_path / "cache", synthetic=True)
    codec.activity = seen.append
    scenario = _scenario(tmp_path)
    from link_sim.mission import Mission

    Mission(scenario, codec, 0).run()
    assert seen[:2] == ["encoding a.png", ""]
