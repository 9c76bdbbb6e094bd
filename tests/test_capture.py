"""Capture metadata: the packed record, the version-3 header, EXIF and sidecar sources."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from tests.conftest import needs_torch
from textboost.bitstream.capture import CaptureMeta, MetaError
from textboost.bitstream.container import BitstreamError, Container, Header
from textboost.capture import capture_for, from_exif

pytestmark = pytest.mark.edge

T = datetime(2026, 12, 3, 10, 15, 42, tzinfo=timezone.utc)
HEADER = dict(model_id=b"abcd", width=768, height=512, rate=100, n_groups=4)


def test_common_case_is_twelve_bytes_and_round_trips_to_the_grid():
    m = CaptureMeta(time=T, lat=-33.856784, lon=151.215297, heading_deg=271.3)
    data = m.to_bytes()
    assert len(data) == 12
    back = CaptureMeta.from_bytes(data)
    assert back.time == T
    assert abs(back.lat - m.lat) < 1.1e-5 and abs(back.lon - m.lon) < 1.1e-5
    assert abs(back.heading_deg - 271.3) <= 360 / 512
    assert back.to_bytes() == data  # the grid value re-encodes to the same bytes
    full = CaptureMeta(time=T, lat=1.0, lon=2.0, alt_m=812.4, heading_deg=0.0, camera=3)
    assert len(full.to_bytes()) == 15
    assert CaptureMeta.from_bytes(full.to_bytes()).alt_m == 812.0


@given(
    t=st.integers(0, (1 << 30) - 1),
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    alt=st.floats(-1000, 64000),
    hdg=st.floats(0, 360),
    cam=st.integers(0, 255),
    mask=st.integers(0, 31),
)
def test_any_record_round_trips_within_its_quantisation(t, lat, lon, alt, hdg, cam, mask):
    kw = {}
    if mask & 1:
        kw["time"] = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=t)
    if mask & 2:
        kw["lat"], kw["lon"] = lat, lon
    if mask & 4:
        kw["alt_m"] = alt
    if mask & 8:
        kw["heading_deg"] = hdg
    if mask & 16:
        kw["camera"] = cam
    m = CaptureMeta(**kw)
    data = m.to_bytes()
    assert len(data) == CaptureMeta.packed_size(data[0])
    back = CaptureMeta.from_bytes(data)
    assert back.time == m.time
    if m.lat is not None:
        assert abs(back.lat - lat) <= 0.6e-5
        dlon = abs(back.lon - lon) % 360
        assert min(dlon, 360 - dlon) <= 0.6e-5
    if m.alt_m is not None:
        assert abs(back.alt_m - alt) <= 0.5
    if m.heading_deg is not None:
        d = abs(back.heading_deg - hdg) % 360
        assert min(d, 360 - d) <= 360 / 512 + 1e-9
    assert back.camera == m.camera


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"lat": 10.0}, "latitude and longitude come as a pair"),
        ({"lat": 91.0, "lon": 0.0}, "latitude 91.0: expected -90 .. 90"),
        ({"lat": 0.0, "lon": float("nan")}, "longitude nan"),
        ({"heading_deg": 400.0}, "heading 400.0"),
        ({"camera": 300}, "camera 300: expected an integer 0..255"),
        ({"time": datetime(2020, 1, 1, tzinfo=timezone.utc)}, "expected 2024-01-01 .. 2058"),
        ({"time": datetime(2026, 1, 1)}, "expected a timezone"),
    ],
)
def test_bad_values_name_the_field(kw, message):
    with pytest.raises(MetaError, match=message):
        CaptureMeta(**kw)


def test_header_version_3_only_when_metadata_is_sent():
    plain = Container(Header(**HEADER), b"", b"zz", (b"g1",)).to_bytes()
    assert plain[2] == 2  # no metadata: byte for byte the version-2 stream
    meta = CaptureMeta(time=T, lat=48.1, lon=11.6)
    data = Container(Header(**HEADER, meta=meta), b"", b"zz", (b"g1",)).to_bytes()
    assert data[2] == 3
    assert len(data) == len(plain) + len(meta.to_bytes())
    c = Container.parse(data)
    assert c.header.meta == CaptureMeta.from_bytes(meta.to_bytes())
    assert c.z == b"zz" and c.groups == (b"g1",)
    # the metadata travels in bundle section 0 with the header
    head = Container.from_sections(c.to_sections()[:1])
    assert head.header.meta == c.header.meta


def test_corrupt_metadata_is_a_bitstream_error_naming_it():
    import struct
    import zlib

    meta = CaptureMeta(time=T)
    data = bytearray(Container(Header(**HEADER, meta=meta), b"", b"z").to_bytes())
    # the mask byte follows the 5 bytes of scale/rate/groups/sections
    at = data.index(meta.to_bytes())
    data[at] = 0x80  # an unknown field bit; fix the CRC up so the parser reaches it
    with pytest.raises(BitstreamError, match="header: metadata mask 0x80: unknown field bits"):
        Container.parse(bytes(data))
    data[at] = 0x01
    data[at + 4] |= 0x01  # a padding bit of the 30-bit time
    end = at + len(meta.to_bytes())
    data[end : end + 4] = struct.pack("<I", zlib.crc32(bytes(data[:end])))
    with pytest.raises(BitstreamError, match="header: metadata record: padding bits"):
        Container.parse(bytes(data))


def _jpeg_with_exif(path, gps: dict, when: str | None = None):
    im = Image.new("RGB", (32, 24), (90, 120, 150))
    exif = Image.Exif()
    ifd = exif.get_ifd(0x8825)
    ifd.update(gps)
    if when:
        exif.get_ifd(0x8769)[36867] = when
        exif.get_ifd(0x8769)[36881] = "+02:00"
    im.save(path, exif=exif)


def test_exif_gps_and_time_are_read(tmp_path):
    path = tmp_path / "frame.jpg"
    dms = lambda d, m, s: (Fraction(d), Fraction(m), Fraction(s))  # noqa: E731
    _jpeg_with_exif(
        path,
        {1: "S", 2: dms(33, 51, 24.42), 3: "E", 4: dms(151, 12, 55.07), 5: 0,
         6: Fraction(125, 2), 17: Fraction(90)},
        when="2026:12:03 12:15:42",
    )  # fmt: skip
    with Image.open(path) as im:
        m = from_exif(im)
    assert m.time == T  # 12:15:42 at +02:00 is 10:15:42 UTC
    assert m.lat == pytest.approx(-(33 + 51 / 60 + 24.42 / 3600))
    assert m.lon == pytest.approx(151 + 12 / 60 + 55.07 / 3600)
    assert m.alt_m == 62.5 and m.heading_deg == 90.0


def test_sidecar_and_overrides_stack_over_exif(tmp_path):
    path = tmp_path / "frame.png"
    Image.new("RGB", (16, 16)).save(path)
    assert capture_for(path) is None
    (tmp_path / "frame.json").write_text(
        json.dumps({"capture": {"time": "2026-12-03T10:15:42Z", "lat": 1.5, "lon": 2.5}})
    )
    m = capture_for(path, {"camera": 7, "lat": 1.25, "lon": None})
    assert (m.time, m.lat, m.lon, m.camera) == (T, 1.25, 2.5, 7)
    (tmp_path / "frame.json").write_text(json.dumps({"lattitude": 1}))
    with pytest.raises(MetaError, match=r"frame\.json: unknown key 'lattitude'"):
        capture_for(path)


@needs_torch  # python -m textboost encode on its default backend
def test_codec_carries_metadata_inside_the_budget(codec, small_image, tmp_path):
    meta = CaptureMeta(time=T, lat=47.3769, lon=8.5417, heading_deg=45.0)
    h, w = small_image.shape[:2]
    budget = 600
    plain = codec.encode_to_budget(small_image, max_bytes=budget)
    data = codec.encode_to_budget(small_image, max_bytes=budget, meta=meta)
    assert len(data) <= budget and len(plain) <= budget
    assert Container.parse(data).header.meta.time == T
    assert codec.decode(data).shape == (h, w, 3)

    from textboost.__main__ import main

    src = tmp_path / "in.png"
    Image.fromarray(small_image).save(src)
    out = tmp_path / "out.tbx"
    args = ["encode", str(src), str(out), "--rate", "0", "--no-text"]
    where = ["--lat", "47.3769", "--lon", "8.5417", "--time", "2026-12-03T10:15:42Z"]
    assert main([*args, *where]) == 0
    from textboost.__main__ import info

    d = info(out.read_bytes())
    assert d["format_version"] == 3
    assert d["capture"]["time"] == "2026-12-03T10:15:42Z"
    assert abs(d["capture"]["lat"] - 47.3769) < 1e-5 and abs(d["capture"]["lon"] - 8.5417) < 1e-5
    assert main([*args, "--lat", "95", "--lon", "0"]) == 2


@given(data=st.binary(min_size=0, max_size=20))
def test_any_bytes_parse_or_raise_meta_error(data):
    try:
        m = CaptureMeta.from_bytes(data)
    except MetaError:
        return
    assert m.to_bytes() == data  # what parses is exactly what its record encodes to


@given(meta=st.binary(min_size=1, max_size=16))
def test_forged_metadata_under_a_valid_header_crc_is_a_bitstream_error(meta):
    import struct
    import zlib

    plain = Container(Header(**HEADER), b"", b"z").to_bytes()
    # magic 2, version 1, model id 4, width 2 and height 2 (varints of 768, 512), 5 bytes
    at = 2 + 1 + 4 + 2 + 2 + 5
    head = bytearray(plain[:at]) + meta
    head[2] = 3
    forged = bytes(head) + struct.pack("<I", zlib.crc32(bytes(head))) + plain[at + 4 :]
    try:
        c = Container.parse(forged)
    except BitstreamError as e:
        assert str(e).startswith(("header", "text", "z", "trailer"))
        return
    assert c.header.meta is not None
