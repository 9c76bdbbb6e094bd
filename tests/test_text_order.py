"""The text section's order of value and its prefix code (payload version 2)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textboost.bitstream import BitstreamError
from textboost.text.filter import TextFilter, select_words, word_rank
from textboost.text.payload import decode_words, encode_words, read_prefix
from textboost.text.style import Style
from textboost.text.words import Word, rect_quad

pytestmark = pytest.mark.edge

W, H = 1280, 720


def _word(text, w=90.0, h=18.0, score=0.9, cx=400.0, cy=100.0, style=None):
    return Word(rect_quad(cx, cy, w, h, 0.0), text, score, style)


def test_plates_then_short_signs_then_the_rest_smallest_first():
    words = [
        _word("Genaxis Theatre", 150, 14),  # long, small text
        _word("EXIT", 60, 30),  # short sign, large characters
        _word("62-03", 40, 12),  # short sign (digits only), small characters
        _word("M5 XSX", 120, 40),  # plate-like, the largest of all
        _word("AB-123", 60, 12, score=0.6),  # plate-like, small
    ]
    order = [w.text for w in sorted(words, key=word_rank)]
    assert order == ["AB-123", "M5 XSX", "62-03", "EXIT", "Genaxis Theatre"]
    # the same order in the section: the sender's and the receiver's agree
    assert [w.text for w in decode_words(encode_words(words, W, H), W, H)] == order


def test_ties_go_to_the_more_confident_and_the_filter_keeps_the_most_valuable():
    a, b = _word("KEEP", score=0.95), _word("DROP", score=0.55)
    assert sorted([b, a], key=word_rank) == [a, b]
    long_small = [_word(f"a long line of text {i}", 300, 10) for i in range(3)]
    kept = select_words([*long_small, _word("XY12ZZ", 80, 16)], W, H, TextFilter(max_words=2))
    assert [w.text for w in kept] == ["XY12ZZ", "a long line of text 0"]


def test_version_1_sections_still_decode():
    # written by the version-1 encoder: column layout, flags, one styled word
    v1 = bytes.fromhex(
        "5402a001c002800a80059001c0011d2000080406455849544d35205853581c0e29730a"
    )
    out = decode_words(v1, W, H)
    assert [w.text for w in out] == ["EXIT", "M5 XSX"]
    assert out[0].style == Style(face=1, dark=True, inset=2, stretch=3, dx=-1, dy=2)
    assert out[1].style is None and out[1].score == pytest.approx(14 / 15)
    assert [w.text for w in read_prefix(v1, W, H)[0]] == ["EXIT", "M5 XSX"]
    assert read_prefix(v1[:-1], W, H) == ([], None)  # older sections: only when whole


colour_st = st.tuples(*[st.integers(0, 15)] * 3)
style_st = st.none() | st.builds(
    lambda colours, **kw: Style(**kw, fg=colours and colours[0], bg=colours and colours[1]),
    colours=st.none() | st.tuples(colour_st, colour_st),
    face=st.integers(0, 1),
    dark=st.booleans(),
    inset=st.integers(0, 15),
    stretch=st.integers(0, 15),
    dx=st.integers(-8, 7),
    dy=st.integers(-8, 7),
)

word_st = st.builds(
    lambda cx, cy, w, h, deg, text, score, style: Word(
        rect_quad(cx, cy, w, h, math.radians(deg)), text, score, style
    ),
    st.floats(0, W),
    st.floats(0, H),
    st.floats(2, 400),
    st.floats(2, 80),
    st.floats(-179, 179),
    st.text(min_size=1, max_size=20),
    st.floats(0, 1),
    style_st,
)


@settings(max_examples=120, deadline=None)
@given(st.lists(word_st, max_size=12))
def test_every_prefix_decodes_to_a_prefix_of_the_words(words):
    section = encode_words(words, W, H)
    whole = decode_words(section, W, H)
    assert len(whole) == len(words)
    last = 0
    for k in range(len(section) + 1):
        got, total = read_prefix(section[:k], W, H)
        assert total in (None, len(words))
        assert len(got) >= last  # more bytes never lose a word
        last = len(got)
        for g, w in zip(got, whole, strict=False):
            assert g.text == w.text and g.style == w.style and g.score == w.score
            assert (g.quad == w.quad).all()
    assert last == len(words)


def test_a_prefix_with_a_corrupt_word_is_refused():
    section = bytearray(encode_words([_word("EXIT"), _word("AB123")], W, H))
    section[2] = 0xFF  # the first word's centre x runs past the grid
    section[3] = 0x7F
    with pytest.raises(BitstreamError, match="word 0 centre x"):
        read_prefix(bytes(section), W, H)
