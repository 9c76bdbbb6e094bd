"""`python -m textboost.eval`: argument errors, a tiny real run, merging, the strip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import run_module
from textboost.eval.cli import main
from textboost.eval.rd import merge_results

SIDE = 176  # the smallest image 5-scale MS-SSIM accepts


def _write_dataset(folder: Path, n: int = 1) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    for i in range(n):
        base = np.stack([xx * 1.4, yy * 1.4, (xx + yy) * 0.7 + 40 * i], axis=-1)
        img = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i:02d}.png")
    return folder


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (
            ["rd", "--dataset", "X", "--out", "o.json", "--codecs", "jpeg,bpg"],
            'unknown codec "bpg"',
        ),
        (["rd", "--dataset", "X", "--out", "o.json", "--bpp", "0.03,-1"], "bpp must be in"),
        (["rd", "--dataset", "X"], "--out"),
        (["rd", "--dataset", "X", "--out", "o.json", "--downscale", "avif=1,0.5"], ">= 1"),
        (["strip", "--image", "a.png", "--out", "s.png", "--crop", "1,2,3"], "X,Y,W,H"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_parser_errors_are_one_line_exit_2(capsys, argv, needle):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert needle in err


def test_value_errors_are_one_line_exit_2(tmp_path, capsys):
    data = _write_dataset(tmp_path / "d")
    cases = [
        (
            ["rd", "--dataset", str(tmp_path / "none"), "--out", str(tmp_path / "o.json")],
            "folder not found",
        ),
        (["rd", "--dataset", str(data), "--out", str(tmp_path / "o.txt")], "must end in .json"),
        (
            ["rd", "--dataset", str(data), "--out", str(tmp_path / "o.json"), "--workers", "3"],
            "workers must be 1..2",
        ),
        (
            [
                "strip",
                "--image",
                str(data / "img00.png"),
                "--out",
                str(tmp_path / "s.png"),
                "--crop",
                "100,100,100,100",
            ],
            "does not fit",
        ),
    ]
    for argv, needle in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert needle in err


def test_bad_images_are_refused_by_name(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    Image.new("RGB", (64, 64)).save(d / "tiny.png")
    assert main(["strip", "--image", str(d / "tiny.png"), "--out", str(tmp_path / "s.png")]) == 2
    assert "tiny.png" in capsys.readouterr().err
    assert main(["rd", "--dataset", str(d), "--out", str(tmp_path / "o.json")]) == 2
    assert "tiny.png" in capsys.readouterr().err
    (d / "tiny.png").unlink()
    (d / "broken.png").write_bytes(b"not a png")
    assert main(["rd", "--dataset", str(d), "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and "not a readable image" in err and len(err.splitlines()) == 1


def test_help_on_each_command():
    for cmd in (["rd", "--help"], ["strip", "--help"], ["--help"]):
        out = run_module("textboost.eval", *cmd)
        assert out.returncode == 0 and "usage:" in out.stdout


def test_rd_run_then_merge(tmp_path, capsys):
    data = _write_dataset(tmp_path / "d", n=2)
    out = tmp_path / "rd.json"
    base = [
        "rd",
        "--dataset",
        str(data),
        "--out",
        str(out),
        "--bpp",
        "0.2,0.5",
        "--workers",
        "2",
        "--downscale",
        "jpeg=1,2",
        "--downscale",
        "webp=1,2",
    ]
    assert main([*base, "--codecs", "jpeg"]) == 0
    doc = json.loads(out.read_text())
    assert list(doc["codecs"]) == ["jpeg"]
    for name, rec in doc["codecs"]["jpeg"]["images"].items():
        for p in rec["points"]:
            assert p["budget_bytes"] == int(p["target_bpp"] * SIDE * SIDE / 8)
            if p["fit"]:
                assert p["bytes"] <= p["budget_bytes"], name
                assert 0 < p["ms_ssim"] <= 1 and p["psnr_db"] > 10
    assert doc["codecs"]["jpeg"]["run"]["machine"]["logical_cores"] >= 1
    assert doc["codecs"]["jpeg"]["run"]["versions"]["Pillow"]
    assert len(doc["codecs"]["jpeg"]["run"]["code"]["git_commit"]) == 40
    assert (tmp_path / "rd.png").stat().st_size > 0
    capsys.readouterr()

    assert main([*base, "--codecs", "webp", "--merge", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["averages"]) == {"jpeg", "webp"}
    merged = json.loads(out.read_text())
    assert set(merged["codecs"]) == {"jpeg", "webp"}
    assert merged["codecs"]["jpeg"] == doc["codecs"]["jpeg"]

    assert main(["report", "--in", str(out), "--markdown", "--plot", str(tmp_path / "r.png")]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| codec | 0.2 | 0.5 |") and "| webp |" in table
    assert (tmp_path / "r.png").stat().st_size > 0


def test_merge_refuses_other_images():
    a = {
        "schema": "textboost-eval-rd/1",
        "dataset": {"images": [{"file": "a.png"}]},
        "codecs": {},
        "unavailable": {},
        "bpp_targets": [0.1],
    }
    b = {**a, "dataset": {"images": [{"file": "b.png"}]}}
    with pytest.raises(ValueError, match="different set of images"):
        merge_results(a, b)


def test_strip_of_baselines(tmp_path, capsys):
    data = _write_dataset(tmp_path / "d")
    out = tmp_path / "strip.png"
    argv = [
        "strip",
        "--image",
        str(data / "img00.png"),
        "--out",
        str(out),
        "--codecs",
        "jpeg,webp",
        "--bpp",
        "0.3",
        "--crop",
        "10,20,64,48",
        "--zoom",
        "2",
        "--json",
    ]
    assert main(argv) == 0
    panels = json.loads(capsys.readouterr().out)["panels"]
    assert [p["codec"] for p in panels] == ["jpeg", "webp"]
    assert all(p["bytes"] <= int(0.3 * SIDE * SIDE / 8) for p in panels)
    with Image.open(out) as im:
        assert im.size[0] == 3 * 64 * 2 + 2 * 6  # three tiles and two gaps
