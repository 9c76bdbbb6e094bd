"""Text side channel: payload round trip and bounds, filter, renderer geometry, spotter."""

from __future__ import annotations

import dataclasses
import math
import zlib

import brotli
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textboost.bitstream.container import BitstreamError
from textboost.text.filter import TextFilter, select_words
from textboost.text.payload import (
    MAX_BODY,
    decode_words,
    encode_words,
    grid_bits,
    restore_level,
    with_restore,
)
from textboost.text.render import render_guidance
from textboost.text.words import Word, oriented_rect, reading_order, rect_quad

from .conftest import SHARED

pytestmark = pytest.mark.edge

W, H = 1280, 720


def _rect_word(cx, cy, w, h, deg, text="WORD"):
    return Word(rect_quad(cx, cy, w, h, math.radians(deg)), text)


word_st = st.builds(
    lambda cx, cy, w, h, deg, text: _rect_word(cx, cy, w, h, deg, text),
    st.floats(0, W),
    st.floats(0, H),
    st.floats(2, 400),
    st.floats(2, 80),
    st.floats(-179, 179),
    st.text(min_size=1, max_size=30),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(word_st, max_size=20))
def test_payload_round_trip(words):
    words = [Word(w.quad, f"{w.text}#{i}") for i, w in enumerate(words)]  # unique strings
    data = encode_words(words, W, H)
    out = decode_words(data, W, H)
    assert sorted(w.text for w in out) == sorted(w.text for w in words)
    step = max(W, H) / (1 << grid_bits(W, H))
    for w in words:
        cx, cy, rw, rh, ang = oriented_rect(w.quad)
        # the decoded word with this string whose centre is nearest
        (best,) = (o for o in out if o.text == w.text)
        ocx, ocy, orw, orh, oang = oriented_rect(best.quad)
        if rw >= 1.5 * step and rh >= 1.5 * step:
            assert abs(ocx - cx) <= step and abs(ocy - cy) <= step
            assert abs(orw - rw) <= step and abs(orh - rh) <= step
        d = (oang - ang + math.pi) % (2 * math.pi) - math.pi
        if min(rw, rh) >= 4 * step:  # angles agree within one 1/256-turn step
            assert abs(d) <= 2 * math.pi / 256 + 1e-9


@settings(max_examples=100, deadline=None)
@given(st.lists(word_st, min_size=1, max_size=12), st.data())
def test_restore_strengths_round_trip_and_change_nothing_else(words, data):
    """The sender's restore strength is two bits a word: set on any words of a section it
    survives the round trip (to the nearest third), keeps the section's length and every
    other field, and a section whose words all get the whole block is byte for byte the
    one written before the bits existed."""
    words = [Word(w.quad, f"{w.text}#{i}") for i, w in enumerate(words)]
    section = encode_words(words, W, H)
    n = len(words)
    strengths = data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
    marked = with_restore(section, W, H, strengths)
    assert len(marked) == len(section)
    assert with_restore(section, W, H, [1.0] * n) == section
    before, after = decode_words(section, W, H), decode_words(marked, W, H)
    assert [w.restore for w in before] == [1.0] * n
    for got, want in zip(after, strengths, strict=True):
        assert abs(got.restore - want) <= 1 / 6 + 1e-9
        assert restore_level(got.restore) == restore_level(want)
    for a, b in zip(before, after, strict=True):
        assert (a.text, a.score, a.style) == (b.text, b.score, b.style)
        assert np.array_equal(a.quad, b.quad)
    assert with_restore(marked, W, H, [1.0] * n) == section
    # the encoder writes the bits too (the section's order is its own: match by string)
    chosen = {w.text: w.restore for w in after}
    again = encode_words([dataclasses.replace(w, restore=chosen[w.text]) for w in words], W, H)
    assert {w.text: w.restore for w in decode_words(again, W, H)} == chosen


def test_restore_strengths_are_refused_where_they_cannot_be_carried():
    words = [_rect_word(300, 200, 120, 30, 0, "EXIT")]
    v2 = encode_words(words, W, H)
    with pytest.raises(ValueError, match="2 restore strengths for 1 words"):
        with_restore(v2, W, H, [1.0, 0.0])
    with pytest.raises(ValueError, match=r"restore 1\.5 outside 0\.\.1"):
        with_restore(v2, W, H, [1.5])
    v1 = bytes([v2[0] & ~0x0C | 1 << 2]) + v2[1:]  # the same header byte, version 1
    with pytest.raises((ValueError, BitstreamError)):
        with_restore(v1, W, H, [0.0])


def test_no_words_is_empty_section():
    assert encode_words([], W, H) == b""
    assert decode_words(b"", W, H) == []


def test_payload_smaller_than_gzip_of_the_same_words():
    # version 2 is raw (a prefix is whole words): 89 bytes here, version 1 (brotli) took 66
    words = [
        _rect_word(400 + 60 * i, 100 + 30 * i, 90, 18, 0, t)
        for i, t in enumerate(["Carpark", "EXIT", "62-03", "Genaxis Theatre", "M5 XSX"])
    ]
    import gzip

    text = "\n".join(",".join(str(round(v)) for v in w.quad.ravel()) + "," + w.text for w in words)
    assert len(encode_words(words, W, H)) < 0.7 * len(gzip.compress(text.encode()))


def _section(body: bytes, method: int, bits: int = 11) -> bytes:
    return bytes([method | (bits - 6) << 4]) + body


@pytest.mark.parametrize(
    ("section", "match"),
    [
        (_section(b"\x05\x00", 0), "truncated at word 1 centre y"),
        (_section(b"\xff\xff\xff\xff\x01", 0), "word count varint longer"),
        (_section(bytes([0xFF, 0x03]), 0), "word count 511 exceeds"),
        (bytes([12]) + b"\x00", "payload version 3"),
        (bytes([9]) + b"\x00", "version 2 with compression method 1"),
        (bytes([3]) + b"\x00", "compression method 3"),
        (_section(b"\x01\x00\x00\x02\x02\x00\x02\xff\xfe", 0), "not UTF-8"),
        (_section(b"\x01\x00\x00\x02\x02\x00\x01AB", 0), "1 unexpected bytes"),
        (_section(b"\x01\x00\x00\x00\x02\x00\x01A", 0), "word 0 width 0 outside"),
        (_section(zlib.compress(b"\x00")[2:-4][:1], 1), "deflate body"),
        (_section(b"\x8b\x00\x00\x00garbage", 2), "brotli body"),
    ],
)
def test_malformed_sections_name_the_field(section, match):
    with pytest.raises(BitstreamError, match=match):
        decode_words(section, W, H)


@pytest.mark.parametrize("method", [1, 2])
def test_decompression_bomb_is_refused(method):
    bomb = b"\x00" * (50 * MAX_BODY)
    if method == 1:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        body = c.compress(bomb) + c.flush()
    else:
        body = brotli.compress(bomb)
    assert len(body) < 2000
    with pytest.raises(BitstreamError, match="cap"):
        decode_words(_section(body, method), W, H)


def test_filter_keeps_small_confident_words_smallest_first():
    paper = TextFilter(char_area_full=800)
    assert paper.threshold(W, H) == pytest.approx(800.0)  # the paper's two points
    assert paper.threshold(256, 256) == pytest.approx(150.0)
    assert TextFilter().threshold(W, H) == pytest.approx(1600.0)  # our default: 2x
    small = _rect_word(100, 100, 60, 12, 0, "ABCDEF")  # 120 px² a character
    large = _rect_word(300, 300, 300, 60, 0, "BIG")  # 6000 px² a character
    shy = Word(small.quad, "ABCDEF", score=0.3)
    tiny = _rect_word(500, 100, 30, 6, 0, "ABC")
    kept = select_words([large, small, shy, tiny], W, H, TextFilter())
    assert [w.text for w in kept] == ["ABC", "ABCDEF"]
    assert len(select_words([small, tiny], W, H, TextFilter(max_words=1))) == 1
    with pytest.raises(ValueError, match="min_score"):
        TextFilter(min_score=2)
    with pytest.raises(ValueError, match="match_score 'dice'"):
        TextFilter(match_score="dice")


def test_no_words_renders_zero_map():
    g = render_guidance([], 64, 48)
    assert g.shape == (48, 64) and g.dtype == np.float32 and not g.any()


@pytest.mark.parametrize("deg", [0, 30, -75, 90, 180])
def test_rotated_word_renders_inside_its_quad(deg):
    w = _rect_word(320, 240, 220, 40, deg, "PLATE 42")
    g = render_guidance([w], 640, 480)
    ys, xs = np.nonzero(g > 0.05)
    assert len(xs) > 500  # the glyphs are there
    # every inked pixel centre lies within the quad grown by one pixel
    cx, cy, rw, rh, ang = oriented_rect(w.quad)
    dx, dy = xs + 0.5 - cx, ys + 0.5 - cy
    along = dx * math.cos(ang) + dy * math.sin(ang)
    across = -dx * math.sin(ang) + dy * math.cos(ang)
    assert np.all(np.abs(along) <= rw / 2 + 1.0)
    assert np.all(np.abs(across) <= rh / 2 + 1.0)
    # and the ink spans most of the box along the reading direction
    assert np.ptp(along) > 0.7 * rw


def test_render_is_deterministic():
    words = [_rect_word(100, 50, 120, 20, 10, "Route 66"), _rect_word(60, 100, 40, 9, 0, "km 7")]
    assert np.array_equal(render_guidance(words, 200, 150), render_guidance(words, 200, 150))


def test_standing_quad_reads_along_its_long_side():
    quad = np.array([[100, 100], [120, 100], [120, 200], [100, 200]], dtype=float)
    cx, cy, rw, rh, ang = oriented_rect(reading_order(quad, 6))
    assert (cx, cy) == pytest.approx((110, 150))
    assert rw == pytest.approx(100) and rh == pytest.approx(20)
    assert ang == pytest.approx(math.pi / 2)


ICDAR = SHARED / "data" / "scenetext" / "icdar2015_mmocr_toy"


@pytest.mark.skipif(not ICDAR.is_dir(), reason="../shared scene-text set absent")
def test_real_image_spot_filter_payload_render():
    from textboost.codec.image import load_image
    from textboost.text.spotter import default_spotter

    img = load_image(ICDAR / "img_1.jpg")
    h, w = img.shape[:2]
    spotted = default_spotter().spot(img)
    texts = {s.text.lower() for s in spotted}
    assert "carpark" in texts  # PP-OCRv4 reads the sign's small words
    kept = select_words(spotted, w, h, TextFilter())
    assert kept and all(k.char_area < 1600 for k in kept)
    section = encode_words(kept, w, h)
    assert 0 < len(section) < 120
    back = decode_words(section, w, h)
    g = render_guidance(back, w, h)
    assert g.shape == (h, w) and g.max() > 0.9
    # the map lights up on the carpark sign, not elsewhere
    car = next(k for k in kept if k.text.lower() == "carpark")
    x0, y0 = car.quad.min(0).astype(int)
    x1, y1 = car.quad.max(0).astype(int)
    assert g[y0:y1, x0:x1].mean() > 0.1
    assert g[400:, :].max() == 0.0
