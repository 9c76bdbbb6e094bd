"""The ground node: reassembly from in-order prefixes, partial results, the output layout
(downlink/store.py), CLI."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from downlink import DownlinkNode, psnr_db
from tests.helpers import run_module
from textboost.bitstream.capture import CaptureMeta
from textboost.bitstream.container import Container, Header
from textboost.protocol import LinkConfig, Sender


def tbx(rng: np.random.Generator) -> bytes:
    header = Header(model_id=b"TST1", width=96, height=64, rate=1000, n_groups=4)
    groups = tuple(rng.bytes(n) for n in (60, 90, 150, 200))
    return Container(header=header, text=b"STOP", z=rng.bytes(30), groups=groups).to_bytes()


def test_partial_bundle_is_reassembled_from_its_prefix(tmp_path):
    """The link dies after header, text, z and one y group: the ground keeps a valid
    container with one group and writes its prefix under partial/."""
    rng = np.random.default_rng(1)
    data = tbx(rng)
    cfg = LinkConfig(mtu_bytes=64, arq="none")
    s = Sender(cfg)
    sections = Container.parse(data).to_sections()
    s.submit(3, sections, 0.0)
    node = DownlinkNode(cfg, out_dir=tmp_path, codec_factory=None)
    frames = s.poll_transmit(0.0)
    total = sum(map(len, sections[:3]))
    sent = 0
    for f in frames:  # deliver until the first three sections are in, then cut the link
        node.receive(f, 1.0)
        sent = sum(map(len, node.receiver.delivered_sections(3)))
        if sent >= total:
            break
    (res,) = node.finish(2.0)
    assert not res.complete and res.sections_delivered == 3 and res.groups_delivered == 1
    assert res.n_sections == 6 and res.bytes_delivered == total
    assert Path(res.tbx_path).read_bytes() == Container.parse(data).truncated(1).to_bytes()
    assert Path(res.tbx_path) == tmp_path / "partial" / "e0_b3.tbx"
    assert res.bundle_id == 3 and res.image is None and not list(tmp_path.glob("*.json"))


def test_psnr():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 255
    assert psnr_db(a, a) == float("inf")
    assert psnr_db(a, b) == pytest.approx(10 * np.log10(48))
    with pytest.raises(ValueError, match="differ in shape"):
        psnr_db(a, b[:2])


def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "refs.json"
    bad.write_text("{not json")
    for argv, needle in (
        (["receive", "--port", "70000", "--out", str(tmp_path)], "--port"),
        (["receive", "--port", "0", "--out", str(tmp_path), "--references", str(bad)], "refs.json"),
        (["receive", "--port", "0", "--out", str(tmp_path), "--key-file", "nokey"], "nokey"),
    ):
        out = run_module("downlink", *argv)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0]


def test_cli_help_shows_field_example():
    out = run_module("downlink", "receive", "--help", check=True)
    assert "--port 9000 --out received/" in out.stdout


def test_words_reach_the_json_before_the_image(tmp_path):
    """The first section (header and text) lands first: the words are published (callback
    and ``partial/eE_bB.json``) while the image is still on its way; the image's record
    ``NAME.json`` keeps them, and the partial file goes."""
    from textboost.text.payload import encode_words
    from textboost.text.words import Word

    rng = np.random.default_rng(4)
    words = [
        Word(np.array([[10, 10], [50, 10], [50, 20], [10, 20]], float), "EXIT"),
        Word(np.array([[60, 40], [90, 40], [90, 50], [60, 50]], float), "Zone 7 — Nord"),
    ]
    when = datetime(2026, 12, 3, 9, 30, tzinfo=timezone.utc)
    meta = CaptureMeta(time=when, lat=-12.5, lon=130.8, heading_deg=90.0)
    header = Header(model_id=b"TST1", width=96, height=64, rate=1000, n_groups=4, meta=meta)
    data = Container(
        header=header,
        text=encode_words(words, 96, 64),
        z=rng.bytes(30),
        groups=tuple(rng.bytes(n) for n in (60, 90, 150, 200)),
    ).to_bytes()
    cfg = LinkConfig(mtu_bytes=48, arq="none")
    s = Sender(cfg)
    s.submit(5, Container.parse(data).to_sections(), 0.0)
    seen = []
    node = DownlinkNode(cfg, out_dir=tmp_path, codec_factory=None, on_text=seen.append)
    early = None
    for k, f in enumerate(s.poll_transmit(0.0)):
        node.receive(f, float(k))
        if seen and early is None:
            early = json.loads((tmp_path / "partial" / "e0_b5.json").read_text())
            assert not node.results  # the image is not complete yet
    assert early is not None and "image" not in early
    assert [w["text"] for w in early["words"]] == ["EXIT", "Zone 7 — Nord"]
    assert np.allclose(early["words"][0]["quad"], words[0].quad, atol=1)
    capture = early["capture"]  # where and when, with the words, before the image
    assert capture["time"] == "2026-12-03T09:30:00Z" and capture["heading_deg"] == 90.0
    assert (capture["lat"], capture["lon"]) == pytest.approx((-12.5, 130.8), abs=1e-5)
    (text,) = seen
    assert text.strings == ["EXIT", "Zone 7 — Nord"] and text.error is None
    res = node.results[5]
    assert res.complete and res.text_s == text.time_s < res.time_s
    final = json.loads((tmp_path / f"{res.image}.json").read_text())
    assert final["bundle"] == 5 and final["words"] == early["words"]
    assert not (tmp_path / "partial" / "e0_b5.json").exists()
    assert [w["text"] for w in res.words] == ["EXIT", "Zone 7 — Nord"]
    assert res.capture == capture and final["capture"] == capture


def test_unreadable_text_section_is_noted_not_raised(tmp_path):
    rng = np.random.default_rng(5)
    cfg = LinkConfig(mtu_bytes=64, arq="none")
    s = Sender(cfg)
    s.submit(1, Container.parse(tbx(rng)).to_sections(), 0.0)  # text b"STOP": no payload
    node = DownlinkNode(cfg, out_dir=tmp_path, codec_factory=None)
    for f in s.poll_transmit(0.0):
        node.receive(f, 1.0)
    assert node.texts[1].error and "text" in node.texts[1].error
    assert node.results[1].complete and node.results[1].words == []


def test_cli_has_no_fusion_switch():
    out = run_module("downlink", "receive", "--help", check=True)
    assert "--no-fusion" in out.stdout


def test_no_fusion_reaches_the_codec(tmp_path):
    """``fusion=False`` (``--no-fusion``) is passed to the codec's decode; the default
    leaves the choice to the codec (fuse when its fusion block shipped)."""
    calls = []

    class Fake:
        def decode(self, data, **kw):
            calls.append(kw)
            return np.zeros((64, 96, 3), np.uint8)

    cfg = LinkConfig(mtu_bytes=512, arq="none")
    for fusion, expected in ((False, {"fusion": False}), (None, {})):
        s = Sender(cfg)
        s.submit(2, Container.parse(tbx(np.random.default_rng(6))).to_sections(), 0.0)
        node = DownlinkNode(cfg, codec_factory=Fake, fusion=fusion)
        for f in s.poll_transmit(0.0):
            node.receive(f, 1.0)
        assert node.results[2].decoded and calls[-1] == expected
