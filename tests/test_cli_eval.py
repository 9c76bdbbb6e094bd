"""`python -m textboost encode --psnr / --progress` and `python -m textboost eval DIR`:
quality figures of real decoded bytes, per image and as means."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from textboost.__main__ import main
from textboost.codec.image import psnr_db
from textboost.eval.metrics import ms_ssim


@pytest.fixture(scope="module")
def codec(pipeline):
    """These tests exercise the method (words carried, fused decode): the pipeline."""
    return pipeline


@pytest.fixture(autouse=True)
def _loaded_once(codec, monkeypatch):
    """The CLI's Pipeline.load() hands back the session's codec (the same shipped model and
    backend), so each command does not load the weights again."""
    from textboost.pipeline.api import Pipeline

    monkeypatch.setattr(Pipeline, "load", classmethod(lambda cls, *a, **kw: codec))


@pytest.fixture(scope="module")
def folder(tmp_path_factory, kodim23):
    """Two 256×192 crops (big enough for 5-scale MS-SSIM)."""
    d = tmp_path_factory.mktemp("photos")
    Image.fromarray(kodim23[:192, :256]).save(d / "a.png")
    Image.fromarray(kodim23[300:492, 400:656]).save(d / "b.png")
    (d / "notes.txt").write_text("not an image: left out by suffix")
    return d


def test_encode_psnr_matches_the_decoded_bytes(folder, tmp_path, capsys, codec):
    out = tmp_path / "a.tbx"
    assert main(["encode", str(folder / "a.png"), str(out), "--max-bytes", "400", "--no-text",
                 "--psnr"]) == 0
    line = capsys.readouterr().out.strip()
    data = out.read_bytes()
    img = np.asarray(Image.open(folder / "a.png"))
    dec = codec.decode(data)  # the receiver's output (the CLI loads the same model)
    assert line == (
        f"{out}: {len(data)} bytes, {8 * len(data) / (256 * 192):.4f} bpp, "
        f"PSNR {psnr_db(img, dec):.2f} dB, MS-SSIM {ms_ssim(img, dec):.4f}"
    )


def test_encode_progress_only_when_asked_or_on_a_terminal(folder, tmp_path, capsys):
    args = ["encode", str(folder / "b.png"), str(tmp_path / "b.tbx"), "--max-bytes", "300",
            "--no-text"]
    assert main(args) == 0
    assert capsys.readouterr().err == ""  # stderr is not a terminal here
    assert main([*args, "--progress"]) == 0
    err = capsys.readouterr().err.splitlines()
    # the predicted search analyses the scale it chose (at most the full 256×192)
    first = re.match(r"budget 300 B, (\d+)×(\d+): analysing", err[0])
    assert first and int(first[1]) <= 256 and int(first[2]) <= 192
    assert any("→" in e and "(fits" in e for e in err)


def test_eval_folder_json(folder, capsys):
    assert main(["eval", str(folder), "--max-bytes", "350", "--no-text", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = doc["images"]
    assert [r["image"] for r in rows] == ["a.png", "b.png"]
    assert all(r["bytes"] <= 350 and r["bpp"] == 8 * r["bytes"] / (256 * 192) for r in rows)
    assert all(10 < r["psnr_db"] < 60 and 0 < r["ms_ssim"] <= 1 for r in rows)
    s = doc["summary"]
    assert s["images"] == 2 and s["ms_ssim_images"] == 2
    assert s["psnr_db_mean"] == pytest.approx(np.mean([r["psnr_db"] for r in rows]))
    assert doc["settings"]["policy"] == "max_bytes=350" and doc["settings"]["text"] is False


def test_eval_folder_lines(folder, capsys):
    assert main(["eval", str(folder), "--rate", "0", "--no-text"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("a.png: 256x192, ") and "PSNR" in lines[0]
    assert lines[2].startswith("mean over 2 images (rate=0): ")


def test_eval_checks_every_image_before_encoding(folder, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(bad / "a_tiny.png")
    (bad / "b_broken.png").write_bytes(b"not a png")
    assert main(["eval", str(bad), "--bpp", "0.03"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {bad / 'a_tiny.png'}: 8×8 pixels is too small to code at 0.03 bpp (0 bytes, "
        "and the smallest stream is 32 bytes: at least 93×93 at this bpp)\n"
    )
    assert main(["eval", str(bad), "--max-bytes", "1000"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {bad / 'b_broken.png'}: not a readable")
    assert main(["eval", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'none'}: no such folder\n"
