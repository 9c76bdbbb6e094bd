"""The live page's state, read from the ground service's event log and output files."""

from __future__ import annotations

import json
import math
import re
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from downlink.cli import main
from downlink.web import MAX_TILES, GroundView, LiveServer, _map_svg
from textboost.field.eventlog import EventLog


class Clock:
    def __init__(self) -> None:
        self.t = 1_796_000_000.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def _write_partial(out, key: str, doc: dict) -> None:
    (out / "partial").mkdir(parents=True, exist_ok=True)
    (out / "partial" / f"{key}.json").write_text(json.dumps(doc))


def test_an_image_goes_from_words_to_picture(tmp_path):
    out, log_path = tmp_path / "received", tmp_path / "down.jsonl"
    clock = Clock()
    log = EventLog(log_path, "downlink", clock=clock)
    view = GroundView(out, log_path, clock=clock)
    assert view.refresh() == [] and view.images == {}
    capture = {"time": "2026-11-30T00:50:00Z", "lat": 46.5197, "lon": 6.6323}  # before the log
    words = [{"text": "VD 12345", "quad": [[4, 4], [60, 4], [60, 18], [4, 18]]}]
    _write_partial(out, "e7_b0", {"width": 96, "height": 64, "words": words, "capture": capture})
    log.write("restart", epoch=3)
    log.write("frame_dropped", epoch=7, bundle=99, reason="auth", detail="bad tag")
    log.write("text", epoch=7, bundle=0, bytes=40, words=["VD 12345"])
    changed = view.refresh()
    assert set(changed) == {"card:e7_b0", "map", "link"}  # no card for a forged bundle
    card = view.card_html("e7_b0")
    assert "VD 12345" in card and "46.51970" in card and "picture on its way" in card
    assert view.drops == {"auth": 1}
    seq, parts = view.changes_since(0)
    assert set(parts) == {"card:e7_b0", "map", "link"} and view.changes_since(seq)[1] == []
    log.write("group", epoch=7, bundle=0, group=1, bytes=300, png=str(out / "partial/e7_b0.png"))
    # a line cut mid-write waits for its end
    with open(log_path, "a") as f:
        f.write('{"t": 1796000100.0, "node": "downlink", "event": "deliv')
    assert view.refresh() == ["card:e7_b0", "link"]
    card = view.card_html("e7_b0")
    assert "preview: sharpening" in card and "y groups decoded</td><td>1<" in card
    assert "src='/files/partial/e7_b0.png?v=" in view.card_html("e7_b0")
    with open(log_path, "a") as f:
        f.write('ered", "image": "abc", "epoch": 7, "bundle": 0, "bytes": 512}\n')
    (out / "abc.json").write_text(json.dumps({"width": 96, "height": 64, "words": words,
                                              "capture": capture}))  # fmt: skip
    log.write("decoded", image="abc", png="abc.png")  # by name only: mapped to its card
    view.refresh()
    img = view.images["e7_b0"]
    assert img.name == "abc" and img.png == "abc.png" and img.bytes == 512
    card = view.card_html("e7_b0")
    assert "complete" in card and "/files/abc.png" in card
    assert "text after capture" in card and "picture after capture" in card
    link = view.link_html()
    assert "images delivered" in link and "auth 1" in link and "512" in link


def test_positions_are_drawn_on_a_grid_and_over_a_tile_folder(tmp_path):
    out, log_path = tmp_path / "received", tmp_path / "down.jsonl"
    log = EventLog(log_path, "downlink")
    for i, (lat, lon) in enumerate([(46.5197, 6.6323), (46.5211, 6.6281)]):
        _write_partial(out, f"e1_b{i}", {"words": [], "capture": {"lat": lat, "lon": lon}})
        log.write("text", epoch=1, bundle=i, words=[])
    view = GroundView(out, log_path)
    view.refresh()
    svg = view.map_svg()
    assert svg.count("class='tb-pos'") == 2 and "<image" not in svg
    labels = re.findall(r">(-?\d+\.\d+)°<", svg)
    assert len(set(labels)) == len(labels) >= 4  # grid labels precise enough to differ
    tiled = view.map_svg(zooms=(0, 19))
    z = int(re.search(r"/tiles/(\d+)/\d+/\d+\.png", tiled).group(1))
    n = 2**z
    assert 10 <= z <= 19
    tx = int((6.6323 + 180) / 360 * n)
    lat = math.radians(46.5197)
    ty = int((1 - math.log(math.tan(lat) + 1 / math.cos(lat)) / math.pi) / 2 * n)
    assert f"/tiles/{z}/{tx}/{ty}.png" in tiled  # the tile under the first point is drawn
    tile = tmp_path / "tiles" / str(z) / str(tx) / f"{ty}.png"
    tile.parent.mkdir(parents=True)
    tile.write_bytes(b"\x89PNG tile")
    web = LiveServer(view, ("127.0.0.1", 0), tiles=tmp_path / "tiles").start()
    try:
        with urllib.request.urlopen(f"{web.url}tiles/{z}/{tx}/{ty}.png") as r:
            assert r.read() == b"\x89PNG tile"
    finally:
        web.close()


def test_serve_rejects_a_bad_web_address(capsys):

    with pytest.raises(SystemExit) as e:
        main(["serve", "--config", "configs/field.yaml", "--web", "localhost:99999"])
    assert e.value.code == 2
    assert "--web localhost:99999" in capsys.readouterr().err


def test_lines_that_are_not_the_services_events_are_skipped(tmp_path):
    log_path = tmp_path / "down.jsonl"
    log_path.write_text('[1, 2]\n{"node": "downlink", "event": "text", "epoch": "x", '
                        '"bundle": 1, "t": 5}\n{"node": "downlink", "event": "text", '
                        '"epoch": 1, "bundle": 2, "t": 6}\n')
    view = GroundView(tmp_path / "out", log_path)
    assert view.refresh() == ["card:e1_b2", "map", "link"]


def test_a_polar_photo_is_drawn_on_the_mercator_edge_and_the_page_answers(tmp_path):
    """Issue 22 item 7: every located image beyond ±85.05° (one at 86°) made the map divide
    by zero, and ``/`` and ``/map`` closed without a response."""
    out, log_path = tmp_path / "received", tmp_path / "down.jsonl"
    log = EventLog(log_path, "downlink")
    _write_partial(out, "e1_b0", {"words": [{"text": "POLAR"}], "capture": {"lat": 86.0,
                                                                             "lon": 10.0}})
    log.write("text", epoch=1, bundle=0, words=["POLAR"])
    view = GroundView(out, log_path)
    view.refresh()
    web = LiveServer(view, ("127.0.0.1", 0)).start()
    try:
        for part in ("", "map"):
            with urllib.request.urlopen(f"{web.url}{part}", timeout=10) as r:
                assert r.status == 200 and "class='tb-pos'" in r.read().decode()
    finally:
        web.close()
    _check_map([("e1_b0", 86.0, 10.0, ["POLAR"])], zooms=(0, 19))


def _check_map(pts: list, zooms: tuple[int, int] | None) -> None:
    """The map is well-formed SVG with finite numbers and every point inside its box."""
    svg = _map_svg(pts, 640, 360, zooms)
    root = ET.fromstring(svg)
    assert "nan" not in svg and "inf" not in svg
    circles = [c for c in root.iter("circle")]
    assert len(circles) == len(pts)
    for c in circles:
        assert -0.1 <= float(c.get("cx")) <= 640.1 and -0.1 <= float(c.get("cy")) <= 360.1
    for img in root.iter("image"):
        z, x, y = map(int, re.search(r"/tiles/(\d+)/(\d+)/(\d+)\.png", img.get("href")).groups())
        assert 0 <= z <= 19 and 0 <= x < 2**z and 0 <= y < 2**z
        if zooms is not None:
            assert zooms[0] <= z <= max(zooms[0], min(zooms[1], 19))
    if zooms is not None:
        assert len(list(root.iter("image"))) <= MAX_TILES


LAT = st.one_of(st.sampled_from([-90.0, -85.06, -85.05, 0.0, 85.05, 85.06, 86.0, 90.0]),
                st.floats(-90, 90))  # fmt: skip
LON = st.one_of(st.sampled_from([-180.0, -179.999, 0.0, 179.999, 180.0]), st.floats(-180, 180))


ZOOMS = st.one_of(st.none(), st.tuples(st.integers(0, 24), st.integers(0, 24)).map(sorted)
                  .map(tuple))  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(LAT, LON), min_size=1, max_size=5), ZOOMS)
def test_any_positions_give_a_finite_map(positions, zooms):
    pts = [(f"e1_b{i}", lat, lon, ["W"]) for i, (lat, lon) in enumerate(positions)]
    _check_map(pts, zooms)
