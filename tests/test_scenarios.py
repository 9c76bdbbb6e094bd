"""Every shipped scenario validates; bad files exit 2 with one line naming file, field,
value and what was expected; the CLI writes its report files; sweeps run in parallel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from link_sim.cli import main
from link_sim.scenario import ScenarioError, load_scenario
from tests.helpers import ROOT, run_module

PRESETS = sorted((ROOT / "scenarios").glob("*.yaml"))
RESCUE = (ROOT / "scenarios/rescue.yaml").read_text()


def test_presets_exist():
    names = {p.stem for p in PRESETS}
    assert {"rescue", "cubesat_uhf", "iridium_sbd", "lora_eu868", "geo_bgan", "hf_ale"} <= names


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_validates(path):
    s = load_scenario(path)
    assert s.name == path.stem


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    return p


def _edit(**changes) -> str:
    raw = yaml.safe_load(RESCUE)
    for dotted, value in changes.items():
        node = raw
        *path, last = dotted.split("__")
        for key in path:
            node = node[key]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return yaml.safe_dump(raw)


BAD = {
    "unknown key": (_edit(link__forward__rate_bsp=9600), ["link.forward.rate_bsp", "unknown"]),
    "negative rate": (_edit(link__forward__rate_bps=-5), ["link.forward.rate_bps", "-5",
                                                           "a number > 0"]),
    "wrong type": (_edit(duration_s="long"), ["duration_s", "'long'", "number"]),
    "missing field": (_edit(seed=KeyError), ["seed", "missing"]),
    "bad enum": (_edit(protocol__arq="sometimes"), ["protocol.arq", "'sometimes'",
                                                     "'immediate'"]),
    "probability > 1": (_edit(link__forward__burst__p=1.5), ["link.forward.burst.p", "1.5"]),
    "arq without reverse": (_edit(link__reverse=None, link__half_duplex=False),
                            ["protocol.arq 'immediate'", "link.reverse"]),
    "half duplex one way": (_edit(link__reverse=None), ["link: half_duplex",
                                                        "a reverse link"]),
    "unknown image set": (_edit(images__set="nope"), ["images.set", "'nope'", "shipped set"]),
    "mtu over link": (_edit(protocol__mtu_bytes=999), ["protocol.mtu_bytes 999",
                                                      "link.forward.mtu_bytes 256"]),
    "bad backend": (_edit(sender__backend="fpga"), ["sender: backend 'fpga'", "torch-cpu"]),
    "bad window": (_edit(link__forward__contacts={"kind": "windows", "windows": [[10, 5]]}),
                   ["link.forward.contacts", "window [10.0, 5.0]", "end > start"]),
    "not yaml": ("name: [unclosed\n", ["not valid YAML", "line"]),
    "infinite interval": (_edit(images__capture__interval_s=float("inf")),
                          ["images.capture.interval_s", "inf", "finite number"]),
    "nan rate": (_edit(link__forward__rate_bps=float("nan")),
                 ["link.forward.rate_bps", "nan", "finite number"]),
    "infinite duration": (_edit(duration_s=float("-inf")), ["duration_s", "-inf", "finite"]),
    "mtu under framing": (_edit(protocol__mtu_bytes=24), ["protocol: mtu_bytes 24",
                                                           "18 bytes of framing"]),
}


def test_non_utf8_scenario_exits_2_with_one_line(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(RESCUE.encode("utf-8") + "# caf\xe9\n".encode("latin-1"))
    assert main([str(path), "--synthetic", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"error: {path}: not UTF-8")


@pytest.mark.parametrize("case", sorted(BAD))
def test_invalid_scenario_exits_2_with_one_line(case, tmp_path, capsys):
    text, needles = BAD[case]
    path = _write(tmp_path, text)
    assert main([str(path), "--synthetic", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"error: {path}")
    for needle in needles:
        assert needle in err, err


def test_invalid_scenario_exit_code_from_python_m(tmp_path):
    path = _write(tmp_path, _edit(link__forward__mtu_bytes=4))
    proc = run_module("link_sim", str(path))
    assert proc.returncode == 2
    assert "link.forward.mtu_bytes: expected a number >= 16, got 4" in proc.stderr


def test_cli_writes_report_files(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main([str(ROOT / "scenarios/rescue.yaml"), "--synthetic", "--runs", "3", "--no-progress",
               "--out", str(out), "--cache", str(tmp_path / "cache")])
    assert rc == 0
    text = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in text
    rep = json.loads((out / "report.json").read_text())
    assert rep["runs"] == 3 and len(rep["per_run"]) == 3
    lat = rep["summary"]["latency_mean_s"]
    assert lat["mean"] > 0 and lat["ci95"] >= 0
    for name in ("images.csv", "runs.csv", "latency_cdf.png", "timeline.png", "bpp_budget.png"):
        assert (out / name).stat().st_size > 0
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "<img src='/" not in html


def test_sweep_runs_grid_in_processes(tmp_path, capsys):
    out = tmp_path / "sweep"
    rc = main(["sweep", str(ROOT / "scenarios/rescue.yaml"), "--synthetic", "--param",
               "link.forward.rate_bps=600,4800", "--workers", "2", "--out", str(out),
               "--cache", str(tmp_path / "cache")])
    assert rc == 0
    points = json.loads((out / "sweep.json").read_text())
    assert [p["value"] for p in points] == [600, 4800]
    slow, fast = (p["summary"]["latency_mean_s"]["mean"] for p in points)
    assert slow > fast
    assert (out / "sweep_link_forward_rate_bps.png").stat().st_size > 0


def test_sweep_bad_param_and_missing_ray(tmp_path, capsys):
    assert main(["sweep", str(ROOT / "scenarios/rescue.yaml"), "--synthetic", "--param",
                 "link.forward.rate_bps=-1", "--out", str(tmp_path)]) == 2
    assert "link.forward.rate_bps: expected a number > 0, got -1" in capsys.readouterr().err
    try:
        import ray  # noqa: F401
    except ImportError:
        assert main(["sweep", str(ROOT / "scenarios/rescue.yaml"), "--synthetic", "--param",
                     "seed=1,2", "--ray", "auto", "--out", str(tmp_path)]) == 2
        assert "pip install" in capsys.readouterr().err


def test_json_on_stdout_is_one_document(tmp_path, capsys):
    rc = main([str(ROOT / "scenarios/geo_bgan.yaml"), "--synthetic", "--json", "--no-progress",
               "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "cache")])
    assert rc == 0
    captured = capsys.readouterr()
    rep = json.loads(captured.out)
    assert rep["scenario"] == "geo_bgan" and len(rep["images"]) == 60
    assert "report:" in captured.err


def test_image_folder_resolves_against_the_scenario_file(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes((ROOT / "link_sim/data/kodak/kodim20.png").read_bytes())
    raw = yaml.safe_load(RESCUE)
    raw["images"] = {"folder": "photos", "capture": {"interval_s": 10.0, "count": 2}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    s = load_scenario(path)
    assert Path(s.images.folder) == folder.resolve()
    raw["images"]["folder"] = "missing"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ScenarioError,
                       match=r"images.folder: expected an existing folder, got .*missing"):
        load_scenario(path)
