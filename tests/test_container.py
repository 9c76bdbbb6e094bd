"""The .tbx container: layout, progressive truncation, and named errors on any damage."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textboost.bitstream.container import BitstreamError, Container, Header

pytestmark = pytest.mark.edge

MID = b"\x01\x02\x03\x04"


def _container(groups=(b"g1" * 10, b"g2" * 20, b"g3")) -> Container:
    return Container(Header(MID, 768, 512, 1234, 5), b"", b"zz" * 30, tuple(groups))


def test_round_trip_and_overhead():
    c = _container()
    data = c.to_bytes()
    assert Container.parse(data, model_id=MID) == c
    payload = sum(len(s) for s in c.sections)
    assert len(data) - payload <= 20 + 5 * len(c.sections)


def test_scale_round_trips_and_sets_the_coded_size():
    h = Header(MID, 768, 512, 99, 5, scale=12)
    assert h.coded_size == (512, 342)
    c = Container(h, b"", b"z", (b"g",))
    assert Container.parse(c.to_bytes()).header == h
    assert Header(MID, 1, 1, 0, 5, scale=255).coded_size == (1, 1)
    with pytest.raises(ValueError, match="scale 7"):
        Header(MID, 8, 8, 0, 5, scale=7)


def test_scale_below_full_size_is_refused():
    import struct
    import zlib

    raw = bytearray(_container().to_bytes())
    raw[11] = 4  # the scale byte after magic, version, model id and two 2-byte varints
    raw[16:20] = struct.pack("<I", zlib.crc32(bytes(raw[:16])))
    with pytest.raises(BitstreamError, match="scale 4/8"):
        Container.parse(bytes(raw))


def test_truncated_container_keeps_first_groups():
    c = _container()
    t = Container.parse(c.truncated(1).to_bytes())
    assert t.groups == c.groups[:1] and t.z == c.z


def test_foreign_model_is_named():
    with pytest.raises(BitstreamError, match="another model"):
        Container.parse(_container().to_bytes(), model_id=b"\x00" * 4)


def test_not_a_tbx():
    with pytest.raises(BitstreamError, match="bad magic"):
        Container.parse(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)


SECTION = re.compile(r"^(header|z|text|y group \d|trailer): ")


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_every_truncation_raises_a_named_error(data):
    raw = _container().to_bytes()
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(BitstreamError) as e:
        Container.parse(raw[:cut])
    assert SECTION.match(str(e.value)), str(e.value)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_bit_flip_raises_a_named_error(data):
    raw = bytearray(_container().to_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(BitstreamError) as e:
        Container.parse(bytes(raw))
    assert SECTION.match(str(e.value)), str(e.value)


def test_trailing_garbage():
    with pytest.raises(BitstreamError, match="trailer"):
        Container.parse(_container().to_bytes() + b"\x00")


def test_bundle_sections_round_trip_for_every_prefix():
    """to_sections: header and text as a .tbx of their own, z, y groups (class = index);
    from_sections rebuilds the container from any in-order prefix."""
    c = Container(Header(MID, 96, 64, 1000, 4), b"STOP", b"z" * 30, (b"a" * 60, b"b" * 90, b"c"))
    sections = c.to_sections()
    assert sections[1:] == [c.z, *c.groups]
    assert Container.parse(sections[0]) == Container(c.header, c.text)
    assert Container.from_sections(sections) == c
    for k in range(len(c.groups) + 1):
        prefix = sections[: Container.IMAGE_SECTIONS + k]
        assert Container.from_sections(prefix) == c.truncated(k)
        assert Container.groups_in(len(prefix)) == k
    assert Container.from_sections(sections[:1]).z == b""
    assert Container.groups_in(1) == Container.groups_in(0) == 0
    with pytest.raises(BitstreamError):
        Container.from_sections([b"garbage", c.z])
    with pytest.raises(BitstreamError, match="y groups"):
        Container.from_sections([*sections, b"extra", b"more"])
    with pytest.raises(ValueError, match="no bundle sections"):
        Container.from_sections([])
