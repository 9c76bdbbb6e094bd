"""Photos keep their names: the source file's name travels in the capture record (bounded,
counted in the budget, off by an option, older streams read unchanged) and the ground shows
it on the page, in JSON, GeoJSON, KML and CoT, beside an id unique across restarts."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from downlink import handoff
from downlink.cli import main as downlink_main
from downlink.web import GroundView
from textboost.bitstream.capture import MAX_NAME_BYTES, CaptureMeta, MetaError, fit_name
from textboost.bitstream.container import Container
from uplink.encode import EncodePipeline

T = datetime(2026, 12, 3, 10, 15, 42, tzinfo=timezone.utc)


def test_name_round_trips_and_older_records_read_unchanged():
    plain = CaptureMeta(time=T, lat=46.5, lon=6.6)
    named = CaptureMeta(time=T, lat=46.5, lon=6.6, name="eu5.jpg")
    assert named.to_bytes() == bytes([plain.to_bytes()[0] | 0x20]) + plain.to_bytes()[1:] + (
        b"\x07eu5.jpg"
    )  # the old layout, then a length byte and the name: 2 + 7 bytes more
    assert CaptureMeta.from_bytes(named.to_bytes()) == CaptureMeta.from_bytes(named.to_bytes())
    assert CaptureMeta.from_bytes(named.to_bytes()).name == "eu5.jpg"
    assert CaptureMeta.from_bytes(plain.to_bytes()).name is None
    assert CaptureMeta(name="ü.jpg").to_json() == {"name": "ü.jpg"}
    assert CaptureMeta.from_json({"name": "a.png"}).name == "a.png"


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "name '': expected 1..32 bytes"), ("x" * 33, "expected 1..32 bytes"),
     ("\ud800.jpg", "expected 1..32 bytes")],
)  # fmt: skip
def test_bad_names_are_refused_naming_the_field(name, message):
    with pytest.raises(MetaError, match=message):
        CaptureMeta(name=name)


@given(st.text(min_size=1, max_size=80))
def test_fit_name_bounds_any_name(name):
    try:
        name.encode()
    except UnicodeEncodeError:
        return
    fitted = fit_name(name)
    assert 1 <= len(fitted.encode()) <= MAX_NAME_BYTES
    meta = CaptureMeta(name=fitted)
    assert CaptureMeta.from_bytes(meta.to_bytes()).name == fitted
    if len(name.encode()) <= MAX_NAME_BYTES:
        assert fitted == name


def test_a_long_name_keeps_its_extension():
    fitted = fit_name("IMG_20261207_034212_burst_sequence_0042.jpg")
    assert fitted.endswith("~.jpg") and len(fitted.encode()) <= MAX_NAME_BYTES


@given(st.binary(min_size=1, max_size=40))
def test_any_bytes_after_a_name_bit_parse_or_raise_meta_error(tail):
    data = bytes([0x20]) + tail
    try:
        m = CaptureMeta.from_bytes(data)
    except MetaError:
        return
    assert m.to_bytes() == data


def test_the_vehicle_carries_the_name_in_its_budget_and_can_leave_it_out(
    pipeline, small_image, tmp_path
):
    from textboost.codec.rate import ByteBudget

    src = tmp_path / "eu5.jpg"
    Image.fromarray(small_image).save(src)
    budget = 600
    named = EncodePipeline(ByteBudget(budget), None, lambda: pipeline, text=False).encode(src)
    bare = EncodePipeline(ByteBudget(budget), None, lambda: pipeline, text=False,
                          name=False).encode(src)  # fmt: skip
    assert len(named.data) <= budget and len(bare.data) <= budget
    assert Container.parse(named.data).header.meta.name == "eu5.jpg"
    meta = Container.parse(bare.data).header.meta
    assert meta is None or meta.name is None


def _record(folder: Path, name: str, epoch: int, bundle: int, capture: dict) -> None:
    doc = {"image": name, "sha256": name * 4, "bytes": 10, "epoch": epoch, "bundle": bundle,
           "capture": capture, "words": [{"text": "VD 1", "quad": None}], "strings": ["VD 1"]}
    (folder / f"{name}.json").write_text(json.dumps(doc))
    Image.new("RGB", (4, 4)).save(folder / f"{name}.png")


def test_ground_names_every_photo_once_across_restarts(tmp_path, capsys):
    """Two vehicle epochs both used bundle 0: two photos, two names, two ids."""
    out = tmp_path / "received"
    out.mkdir()
    here = {"lat": 46.5, "lon": 6.6, "time": "2026-12-03T10:15:42Z"}
    _record(out, "9ef2cf21aaa85172", 7, 0, {**here, "name": "eu5.jpg"})
    _record(out, "0123456789abcdef", 8, 0, {**here, "name": "eu6.jpg"})
    _record(out, "fedcba9876543210", 8, 1, {"name": "indoors.jpg"})  # no position
    images = handoff.load_delivered(out)
    cots = [ET.fromstring(e) for d in images for e in handoff.cot_events(d)[:1]]
    assert len({e.get("uid") for e in cots}) == 2
    calls = [e.find("detail/contact").get("callsign") for e in cots]
    assert calls == ["TEXTBOOST eu5.jpg e7_b0", "TEXTBOOST eu6.jpg e8_b0"]
    # the export: names, links that work from where the file is, the skipped photo named
    maps = tmp_path / "maps"
    maps.mkdir()
    assert downlink_main(["export", str(out), "--geojson", str(maps / "a.geojson"),
                          "--kml", str(maps / "a.kml")]) == 0  # fmt: skip
    said = capsys.readouterr().out
    assert "2 of 3 images have a position (no position, left out: indoors.jpg e8_b1)" in said
    assert str(maps / "a.geojson") in said and str(maps / "a.kml") in said
    features = json.loads((maps / "a.geojson").read_text())["features"]
    assert [f["properties"]["name"] for f in features] == ["eu5.jpg", "eu6.jpg"]
    for f in features:
        assert (maps / f["properties"]["image"]).is_file()  # ../received/NAME.png
    assert "eu5.jpg e7_b0" in (maps / "a.kml").read_text()
    # the page: the name and the stored image's id on the card
    log = tmp_path / "down.jsonl"
    log.write_text("".join(json.dumps(
        {"t": 1.0 + i, "node": "downlink", "event": "delivered", "image": n, "epoch": e,
         "bundle": b}) + "\n" for i, (n, e, b) in enumerate(
             [("9ef2cf21aaa85172", 7, 0), ("0123456789abcdef", 8, 0)])))  # fmt: skip
    view = GroundView(out, log)
    view.refresh()
    titles = {k: view._card(i).title for k, i in view.images.items()}
    assert titles == {"e7_b0": "eu5.jpg · image 9ef2cf21aaa85172",
                      "e8_b0": "eu6.jpg · image 0123456789abcdef"}  # fmt: skip


def test_export_of_a_missing_folder_names_the_configs_folder(tmp_path, capsys, monkeypatch):
    """The README's ``export received/`` beside a field config that writes elsewhere."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "key").write_bytes(b"k" * 32)
    (tmp_path / "configs" / "field.yaml").write_text(
        "link: {key_file: key}\ndownlink: {listen: '127.0.0.1:9', "
        "out_dir: ../runs/field/received, state_db: d.db, event_log: d.jsonl}\n")
    with pytest.raises(SystemExit) as info:
        downlink_main(["export", "received/", "--geojson", "x.geojson"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "received: not a folder" in err and len(err.splitlines()) == 1
    assert "configs/field.yaml writes to downlink.out_dir" in err
    assert "runs/field/received" in err
    (tmp_path / "runs" / "field" / "received").mkdir(parents=True)
    assert downlink_main(["export", "--config", "configs/field.yaml", "--geojson", "x.json"]) == 0
    assert "0 of 0 images have a position; wrote x.json" in capsys.readouterr().out
