"""The per-user cache folder follows XDG (never the current folder), and the simulator's
default encode cache lives under it unless ``--cache`` says otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from link_sim.cli import main
from link_sim.codec_service import default_cache_dir
from tests.helpers import ROOT
from textboost.user_cache import cache_root


def test_cache_root_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("TEXTBOOST_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "textboost"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "textboost"
    assert default_cache_dir() == tmp_path / "xdg" / "textboost" / "link_sim"
    monkeypatch.setenv("TEXTBOOST_CACHE", str(tmp_path / "tb"))
    assert default_cache_dir() == tmp_path / "tb" / "link_sim"


def test_link_sim_encodes_into_the_xdg_cache(tmp_path, monkeypatch):
    """A run without --cache writes its encodes under $XDG_CACHE_HOME, none in the cwd."""
    monkeypatch.delenv("TEXTBOOST_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    img = np.asarray(Image.open(ROOT / "link_sim/data/kodak/kodim20.png").convert("RGB"))
    Image.fromarray(img[200:296, 300:428]).save(photos / "a.png")  # 128×96: one quick encode
    raw = yaml.safe_load((ROOT / "scenarios/rescue.yaml").read_text())
    raw.update(duration_s=200, runs=1, text_path=False)
    raw["images"] = {"folder": "photos", "capture": {"start_s": 1.0, "interval_s": 10.0,
                                                     "count": 1}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    assert main(["s.yaml", "--no-progress", "--out", "o"]) == 0
    encoded = list((tmp_path / "xdg" / "textboost" / "link_sim").rglob("*.tbx"))
    assert len(encoded) == 1, encoded
    assert not Path("cache").exists()
