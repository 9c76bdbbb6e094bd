"""`python -m textboost` encode / decode / info, and its errors."""

from __future__ import annotations

import json
import subprocess

import numpy as np
from PIL import Image

from tests.conftest import KODAK
from tests.helpers import run_module


def run(*args: str) -> subprocess.CompletedProcess:
    return run_module("textboost", *args)


def test_encode_decode_info(tmp_path, small_image):
    src = tmp_path / "in.png"
    Image.fromarray(small_image).save(src)
    tbx, png = tmp_path / "a.tbx", tmp_path / "a.png"
    r = run("encode", str(src), str(tbx), "--rate", "0.5")
    assert r.returncode == 0, r.stderr
    r = run("decode", str(tbx), str(png))
    assert r.returncode == 0, r.stderr
    assert np.asarray(Image.open(png)).shape == small_image.shape
    r = run("info", str(tbx), "--json")
    d = json.loads(r.stdout)
    assert (d["width"], d["height"], d["bytes"]) == (150, 100, tbx.stat().st_size)
    assert d["bpp"] == 8 * d["bytes"] / (150 * 100)
    assert [s["name"] for s in d["sections"]][:2] == ["text", "z"]


def test_max_bytes_on_kodak(tmp_path):
    tbx = tmp_path / "k.tbx"
    r = run("encode", str(KODAK / "kodim01.png"), str(tbx), "--max-bytes", "6000")
    assert r.returncode == 0, r.stderr
    assert tbx.stat().st_size <= 6000


def test_errors_exit_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.tbx"
    bad.write_bytes(b"TB\x01garbage")
    for args, needle in [
        (("decode", str(bad), str(tmp_path / "o.png")), "bad.tbx"),
        (("info", str(tmp_path / "missing.tbx")), "missing.tbx"),
        (("encode", str(bad), str(tmp_path / "o.tbx"), "--rate", "0.5"), "bad.tbx"),
        (("encode", str(KODAK / "kodim01.png"), str(tmp_path / "o.tbx"), "--rate", "2"), "rate"),
    ]:
        r = run(*args)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], r.stderr
