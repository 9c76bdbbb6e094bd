"""Styled words in the text section (version 1), the bounded renderer, and a bad text
section that never costs the picture."""

from __future__ import annotations

import hashlib
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textboost.bitstream.container import BitstreamError, Container
from textboost.text.payload import (
    MAX_STRING_BYTES,
    decode_words,
    encode_words,
    quantise_words,
    read_words,
)
from textboost.text.render import (
    MAX_RENDER_PIXELS,
    TextWarning,
    clean_text,
    render_guidance,
    render_words,
)
from textboost.text.style import FACES, Style
from textboost.text.words import Word, oriented_rect, rect_quad

W, H = 320, 200

# A version-0 section written by the encoder before styles existed (KA 5510 upright,
# Route 66 at -12°, km 7 standing, a word with non-ASCII letters), and the SHA-256 of the
# guidance map that renderer drew from it: an old stream must still render exactly so.
V0_SECTION = bytes.fromhex(
    "3004411f60308003a0039f01bf03f0016090014030161d130004118001070c08044b41203535313"
    "0c39c6ec3af636f6465e282ac526f7574652036366b6d2037"
)
V0_MAP_SHA256 = "45ef91193ef3408720eb9826c79d0b238d720f731d83e131fd87e284e5b77575"

@pytest.fixture(scope="module")
def codec(pipeline):
    """These tests exercise the method (words carried, fused decode): the pipeline."""
    return pipeline


def test_version0_section_decodes_and_renders_as_before():
    words = decode_words(V0_SECTION, W, H)
    assert [w.text for w in words] == ["KA 5510", "Ünïcode€", "Route 66", "km 7"]
    assert all(w.style is None and w.score == 1.0 for w in words)
    g = render_words(words, W, H)
    assert not g.dropped and len(g.words) == 4
    assert hashlib.sha256(g.map.tobytes()).hexdigest() == V0_MAP_SHA256
    assert np.array_equal(render_guidance(words, W, H), g.map)


style_st = st.builds(
    Style,
    face=st.integers(0, len(FACES) - 1),
    dark=st.booleans(),
    inset=st.integers(0, 15),
    stretch=st.integers(0, 15),
    dx=st.integers(-8, 7),
    dy=st.integers(-8, 7),
)
colours_st = st.tuples(st.integers(0, 15), st.integers(0, 15), st.integers(0, 15))


@st.composite
def styled_word(draw):
    style = draw(st.none() | style_st)
    if style is not None and draw(st.booleans()):
        style = Style(**{**_fields(style), "fg": draw(colours_st), "bg": draw(colours_st)})
    quad = rect_quad(
        draw(st.floats(0, W)),
        draw(st.floats(0, H)),
        draw(st.floats(2, 300)),
        draw(st.floats(2, 60)),
        math.radians(draw(st.floats(-179, 179))),
    )
    score = draw(st.integers(0, 15)) / 15
    return Word(quad, draw(st.text(min_size=1, max_size=20)), score, style)


def _fields(s: Style) -> dict:
    return {k: getattr(s, k) for k in Style.__slots__}


@settings(max_examples=150, deadline=None)
@given(st.lists(styled_word(), max_size=12))
def test_payload_v1_round_trip(words):
    words = [Word(w.quad, f"{w.text}#{i}", w.score, w.style) for i, w in enumerate(words)]
    data = encode_words(words, W, H)
    if words:
        assert (data[0] >> 2) & 3 == 2  # the encoder writes version 2 (styles as in 1)
    out = decode_words(data, W, H)
    assert len(out) == len(words)
    by_text = {w.text: w for w in words}
    for o in out:
        w = by_text[o.text]
        assert o.style == w.style
        assert o.score == pytest.approx(w.score, abs=1e-9)
    # the sender's quantisation is the receiver's: same quads, same order
    q = quantise_words(words, W, H)
    assert [x.text for x in q] == [o.text for o in out]
    for a, b in zip(q, out, strict=True):
        np.testing.assert_allclose(a.quad, b.quad, atol=1e-9)


def test_styles_cost_a_few_bytes_a_word():
    words = decode_words(V0_SECTION, W, H)
    plain = encode_words([Word(w.quad, w.text, 0.9) for w in words], W, H)
    styled = encode_words(
        [Word(w.quad, w.text, 0.9, Style(face=2, fg=(15, 15, 0), bg=(0, 0, 0))) for w in words],
        W,
        H,
    )
    assert len(styled) - len(plain) <= 6 * len(words)
    # the confidence (a byte a word) and version 2's absolute centres (a prefix code)
    assert len(plain) - len(V0_SECTION) <= 2 * len(words)


@pytest.mark.parametrize(
    "patch, match",
    [
        (lambda b: b[:-1], "truncated"),
        (lambda b: b + b"\x00", "unexpected bytes"),
    ],
)
def test_malformed_v1_sections_raise_naming_the_field(patch, match):
    word = Word(
        rect_quad(100, 50, 80, 20, 0), "AB12", 0.8, Style(face=1, fg=(1, 2, 3), bg=(4, 5, 6))
    )
    raw = _raw_section([word])
    with pytest.raises(BitstreamError, match=match):
        decode_words(patch(raw), W, H)


def test_bad_flags_and_style_bytes_are_refused():
    word = Word(rect_quad(100, 50, 80, 20, 0), "AB12", 0.8, Style(face=1))
    raw = bytearray(_raw_section([word]))
    flags_at = len(raw) - 4  # flags byte, then 3 style bytes
    bad = bytearray(raw)
    bad[flags_at] = bad[flags_at] & ~0x10 | 0x20  # colours without a style
    with pytest.raises(BitstreamError, match="word 0 flags"):
        decode_words(bytes(bad), W, H)
    marked = bytearray(raw)
    marked[flags_at] |= 0x40  # version 2's bits 6-7: the restore level, not an error
    assert decode_words(bytes(marked), W, H)[0].restore == pytest.approx(2 / 3)
    bad = bytearray(raw)
    bad[-1] = 0x80  # dy byte with high bits set
    with pytest.raises(BitstreamError, match="word 0 style"):
        decode_words(bytes(bad), W, H)
    assert read_words(bytes(bad), W, H)[0] == []
    assert "unreadable" in read_words(bytes(bad), W, H)[1]


def _raw_section(words) -> bytes:
    """The section as written, forced to the raw method so bytes can be patched."""
    import zlib

    import brotli

    data = encode_words(words, W, H)
    method, body = data[0] & 3, data[1:]
    if method == 1:
        body = zlib.decompress(body, -15)
    elif method == 2:
        body = brotli.decompress(body)
    return bytes([data[0] & ~3]) + body


@pytest.mark.parametrize(
    "text", ["KA\n5510", "A\rB", "x\u2028y", "p\u2029q", "nul\x00", "\x1b[31mred"]
)
def test_control_and_separator_characters_are_cleaned(text):
    for style in (None, Style(face=2)):
        g = render_words([Word(rect_quad(160, 100, 200, 40, 0.2), text, 1.0, style)], W, H)
        assert not g.dropped and g.map.max() > 0.5
        assert g.cleaned == [(0, len(text) - len(clean_text(text)))]
        assert g.words[0].text == clean_text(text)
        assert all(c.isprintable() or c == " " for c in g.words[0].text)


def test_nothing_printable_is_dropped_with_a_reason():
    g = render_words([Word(rect_quad(50, 50, 40, 10, 0), "\n\r\u2028")], W, H)
    assert g.words == [] and g.dropped == [(0, "no printable characters")]
    assert not g.map.any()


def bomb_words(size: int, n: int = 60) -> list[Word]:
    """Issue 22 item 4: 60 words of 255 characters, each covering the whole image."""
    return [Word(rect_quad(size / 2, size / 2, size, size, 0), "W" * MAX_STRING_BYTES)] * n


def _brotli_v0_bomb(n: int = 60, size: int = 2048) -> bytes:
    """bomb_words as a hostile sender writes them: a version-0 section, brotli (the
    encoder writes version 2, raw, but the decoder still reads the older sections)."""
    import brotli

    from textboost.bitstream.varint import varint, zigzag

    body = varint(n) + varint(size // 2) + b"\x00" * (n - 1)  # centre y on the 1-px grid
    body += zigzag(size // 2) + b"\x00" * (n - 1)  # centre x
    body += (varint(size) * n) * 2 + b"\x00" * n + varint(MAX_STRING_BYTES) * n
    body += b"W" * MAX_STRING_BYTES * n
    return bytes([2 | (11 - 6) << 4]) + brotli.compress(body)


def test_the_word_bomb_is_dropped_before_drawing():
    section = _brotli_v0_bomb()
    assert len(section) < 64  # a few dozen bytes on the air
    words = decode_words(section, 2048, 2048)
    g = render_words(words, 2048, 2048)
    assert len(g.dropped) == 60 and not g.words and not g.map.any()
    assert all("px" in why for _, why in g.dropped)


def test_the_rendering_budget_caps_an_image():
    # 100 words of 600×600 px, each allowed alone: drawn smallest first until the budget
    words = [
        Word(rect_quad(300 + i, 300, 600, 600, 0), "ABCDEFGH", 1.0, Style()) for i in range(100)
    ]
    g = render_words(words, 1000, 700)
    drawn = sum(w.mask.size for w in g.words)
    assert drawn <= MAX_RENDER_PIXELS and g.words
    assert any("budget" in why for _, why in g.dropped)
    assert len(g.words) + len(g.dropped) == 100


quad_st = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=8, max_size=8).map(
    lambda v: np.reshape(v, (4, 2))
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.builds(Word, quad_st, st.text(max_size=40), st.floats(0, 1), st.none() | style_st),
        max_size=6,
    )
)
def test_render_never_raises(words):
    g = render_words(words, 96, 64)
    assert g.map.shape == (64, 96) and g.map.dtype == np.float32
    assert g.map.min() >= 0.0 and g.map.max() <= 1.0
    assert len(g.words) + len(g.dropped) == len(words)
    assert g.restored_mask().shape == (64, 96)


@pytest.mark.parametrize("deg", [0, 25, 90])
def test_styled_word_stays_in_its_rectangle_and_fills_it(deg):
    w = Word(rect_quad(160, 100, 180, 36, math.radians(deg)), "PLATE 42", 0.7, Style(face=1))
    g = render_words([w], W, H)
    ys, xs = np.nonzero(g.map > 0.05)
    cx, cy, rw, rh, ang = oriented_rect(w.quad)
    dx, dy = xs + 0.5 - cx, ys + 0.5 - cy
    along = dx * math.cos(ang) + dy * math.sin(ang)
    across = -dx * math.sin(ang) + dy * math.cos(ang)
    assert np.all(np.abs(along) <= rw / 2 + 1) and np.all(np.abs(across) <= rh / 2 + 1)
    assert np.ptp(along) > 0.7 * rw
    mask = g.restored_mask()
    assert mask.max() == round(0.7 * 255) and (mask > 0).sum() == pytest.approx(rw * rh, rel=0.1)


def test_a_bad_text_section_never_costs_the_picture(codec, small_image):
    h, w = small_image.shape[:2]
    data = codec.encode(small_image, rate=0.3, text=False)
    c = Container.parse(data)
    plain = codec.decode(data, fusion=False)
    cases = [
        (encode_words(bomb_words(max(w, h)), w, h), None),  # the bomb, scaled: drawn
        (
            encode_words([Word(rect_quad(40, 30, 60, 14, 0), "KA\n\u20285510")], w, h),
            "drawn without 2 control or separator characters",
        ),
        (b"\x07garbage", "unreadable"),  # version 1, compression method 3
    ]
    for section, warned in cases:
        bad = Container(c.header, section, c.z, c.groups).to_bytes()
        assert np.array_equal(codec.decode(bad, fusion=False), plain)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TextWarning)
            img = codec.decode(bad)
        assert img.shape == plain.shape
        notes = [str(x.message) for x in caught if issubclass(x.category, TextWarning)]
        assert (warned is None) == (not notes)
        assert warned is None or warned in notes[0]


@pytest.fixture(scope="module")
def bad_streams(codec, small_image, tmp_path_factory):
    """Issue 22 item 6: an unreadable text section, and a word with line separators."""
    h, w = small_image.shape[:2]
    c = Container.parse(codec.encode(small_image, rate=0.3, text=False))
    folder = tmp_path_factory.mktemp("bad_text")
    out = {}
    for name, section in (
        ("garbage", b"\x07garbage"),
        (
            "newline",
            encode_words([Word(rect_quad(70, 50, 100, 22, 0), "KA\n\u2028551", 0.6)], w, h),
        ),
    ):
        out[name] = folder / f"{name}.tbx"
        out[name].write_bytes(Container(c.header, section, c.z, c.groups).to_bytes())
    return out


@pytest.mark.parametrize("module", ["textboost", "downlink"])
@pytest.mark.parametrize("fusion", [True, False])
def test_decode_commands_write_the_picture_and_the_mask(
    module, fusion, bad_streams, tmp_path, capsys
):
    from PIL import Image

    if module == "textboost":
        from textboost.__main__ import main
    else:
        from downlink.cli import main
    for name, tbx in bad_streams.items():
        png, mask = tmp_path / f"{name}.png", tmp_path / f"{name}.mask.png"
        args = ["decode", str(tbx), str(png), "--mask", str(mask)]
        assert main(args + ([] if fusion else ["--no-fusion"])) == 0
        err = capsys.readouterr().err
        assert Image.open(png).size == (150, 100)
        m = np.asarray(Image.open(mask))
        assert m.shape == (100, 150)
        if name == "garbage" and fusion:
            assert "text section unreadable" in err
        if name == "newline" and fusion:
            assert "word 0 drawn without 2 control or separator characters" in err
        if name == "newline" and fusion:
            assert m.max() == round(0.6 * 15) * 17 and (m > 0).sum() > 1500
        else:
            assert not m.any()
