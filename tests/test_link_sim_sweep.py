"""A sweep point carries what it needs by value: run where the scenario file, the image
folder and the driver's cache are gone, it gives the same summary as on the driver."""

from __future__ import annotations

import shutil

from link_sim.codec_service import CodecService
from link_sim.report import summarize
from link_sim.runner import run_scenario
from link_sim.scenario import load_scenario
from link_sim.sweep import SweepPoint, _sources, plan_streams, run_point
from tests.helpers import ROOT


def test_point_runs_without_the_drivers_files(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("kodim03.png", "kodim07.png"):
        shutil.copy(ROOT / "link_sim/data/kodak" / name, folder / name)
    text = (ROOT / "scenarios/rescue.yaml").read_text()
    text = text.replace("set: kodak_text", "folder: photos")
    (tmp_path / "s.yaml").write_text(text)
    overrides = {"images.capture.count": "3", "text_path": "false"}
    scenario = load_scenario(tmp_path / "s.yaml", overrides)
    driver = CodecService(tmp_path / "driver_cache", synthetic=True)
    point = SweepPoint(overrides, scenario, 1, True)
    streams = plan_streams([point], driver)
    assert driver.encodes == len(streams) == len(point.streams) == 2  # 3 captures, 2 images
    expected = summarize(run_scenario(scenario, driver, 1, progress=False))
    sources = _sources(scenario)
    assert sorted(sources) == ["kodim03.png", "kodim07.png"]
    payload = [(*k, streams[k]) for k in point.streams]
    shutil.rmtree(folder)  # what a worker on another machine lacks
    shutil.rmtree(tmp_path / "driver_cache")
    (tmp_path / "s.yaml").unlink()
    got = run_point(point, sources, *payload)
    assert got["encodes"] == 0  # the streams came with the point
    assert got["summary"] == expected
