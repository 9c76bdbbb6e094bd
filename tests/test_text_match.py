"""The sender's style search: it finds the face, polarity and ink box a word was drawn
with, and fits real glyphs better than the version-0 rendering."""

from __future__ import annotations

import math

import numpy as np
import pytest

from textboost.text.match import SCORES, glyph_iou, match_word, otsu
from textboost.text.render import render_words
from textboost.text.style import FACES, Style
from textboost.text.words import Word, rect_quad

from .conftest import SHARED

pytestmark = pytest.mark.edge  # the sender's search runs on the edge (Python 3.10, no torch)

W, H = 320, 120

@pytest.fixture(scope="module")
def codec(pipeline):
    """These tests exercise the method (words carried, fused decode): the pipeline."""
    return pipeline


def drawn(style: Style, text: str, deg: float = 0.0, fg=(30, 30, 40), bg=(220, 210, 190)):
    """An image with ``text`` drawn in ``style`` into a plate-sized rectangle, with noise."""
    word = Word(rect_quad(160, 60, 220, 48, math.radians(deg)), text, 0.9, style)
    mask = render_words([word], W, H).map[..., None]
    if not style.dark:
        fg, bg = bg, fg
    img = np.asarray(bg, np.float32) * (1 - mask) + np.asarray(fg, np.float32) * mask
    img += np.random.default_rng(0).normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), Word(word.quad, text, 0.9)


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("face", range(len(FACES)))
@pytest.mark.parametrize("dark", [True, False])
def test_the_search_finds_the_face_and_polarity_a_word_was_drawn_with(face, dark, score):
    text = "0123456789" if FACES[face].file.startswith("DSEG") else "KA 5510 RT"
    truth = Style(face=face, dark=dark, inset=4, stretch=8, dx=1, dy=-1)
    img, word = drawn(truth, text)
    m = match_word(img, word, score=score)
    assert m is not None and m.style.dark == dark
    assert glyph_iou(img, word, m.style) == pytest.approx(m.iou)
    if FACES[face].file == "Barlow-Regular.ttf":
        # Barlow Regular and SemiBold differ in weight alone, which a 20-px working
        # height does not resolve: the family is found, the weight is not
        assert FACES[m.style.face].file.startswith("Barlow-"), m
        return
    assert m.style == truth, m
    assert m.iou > 0.8
    assert m.iou > glyph_iou(img, word, None) or face == 0


def test_the_search_works_on_a_word_at_an_angle():
    truth = Style(face=2, dark=False, inset=4, stretch=7)
    img, word = drawn(truth, "EXIT 42B", deg=12)
    m = match_word(img, word, colours=True)
    assert (m.style.face, m.style.dark) == (2, False) and m.iou > 0.7, m
    fg, bg = m.style.rgb()
    assert sum(fg) > sum(bg)  # light glyphs on a dark ground


def test_a_face_is_offered_only_for_strings_it_draws():
    """The 7-segment face draws R or K as other shapes: a plate with letters never gets it
    (seen on a real plate, whose carried rendering read '-6-755' in the picture)."""
    seg = next(i for i, f in enumerate(FACES) if f.file.startswith("DSEG"))
    assert FACES[seg].draws("12:45.6") and not FACES[seg].draws("RK-755AJ")
    for text in ("RK-755AJ", "EXIT 42B"):
        img, word = drawn(Style(face=seg, dark=True, inset=4, stretch=8), text)
        for score in SCORES:
            m = match_word(img, word, score=score)
            assert m is not None and m.style.face != seg


@pytest.mark.parametrize("share", [0.15, 0.3, 0.7, 0.85])
def test_ncc_ink_takes_the_class_that_covers_less_as_the_glyphs(share):
    """Ink is rarely most of a word's rectangle: with ``ncc-ink`` the carried polarity is
    the Otsu class that covers less of it (on OpenALPR US plates the plain correlation
    drew thin dark glyphs as fat light ones over the ground between them)."""
    rng = np.random.default_rng(int(share * 100))
    dark = np.kron(rng.random((H // 8, W // 8)) < share, np.ones((8, 8), bool))  # blotches
    img = np.where(dark[..., None], 40.0, 210.0) + rng.normal(0, 6, (H, W, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    word = Word(rect_quad(160, 60, 220, 48, 0.0), "AB 123", 0.9)
    m = match_word(img, word, score="ncc-ink")
    assert m is not None and m.style.dark == (share < 0.5)


def test_an_unknown_search_objective_is_refused():
    img, word = drawn(Style(face=0, dark=True, inset=4, stretch=8), "AB 12")
    with pytest.raises(ValueError, match="score 'dice': expected one of iou, ncc"):
        match_word(img, word, score="dice")


def test_otsu_splits_two_levels():
    g = np.concatenate([np.full(100, 40.0), np.full(50, 200.0)])
    assert 40 < otsu(g) < 200


def test_degenerate_words_are_not_measured():
    img = np.zeros((50, 50, 3), np.uint8)
    assert match_word(img, Word(rect_quad(10, 10, 0.5, 0.5, 0), "A")) is None
    assert match_word(img, Word(rect_quad(25, 25, 30, 10, 0), "\n\r")) is None


ALPR_US = SHARED / "data" / "scenetext" / "openalpr_us"


@pytest.mark.skipif(not ALPR_US.is_dir(), reason="../shared scene-text set absent")
def test_real_plates_fit_better_than_version0():
    """Both objectives fit real US plates better than the version-0 rendering; the ncc
    search finds the plates' dark-on-light polarity more often than the iou search."""
    from textboost.codec.image import load_image
    from textboost.scenetext.gt import load_dataset

    images, _ = load_dataset(ALPR_US, 4)
    before, after, dark = [], {s: [] for s in SCORES}, {s: 0 for s in SCORES}
    for gt in images:
        img = load_image(gt.image)
        word = Word(gt.words[0].quad, gt.words[0].text)
        before.append(glyph_iou(img, word, None))
        for score in SCORES:
            m = match_word(img, word, score=score)
            after[score].append(m.iou)
            dark[score] += m.style.dark
    assert np.mean(after["iou"]) > np.mean(before) + 0.05
    assert np.mean(after["ncc"]) > np.mean(before) + 0.03
    assert dark["ncc"] > dark["iou"], dark


@pytest.mark.skipif(not ALPR_US.is_dir(), reason="../shared scene-text set absent")
def test_the_sender_carries_a_style_for_every_word(codec):
    from dataclasses import replace

    from textboost.codec.image import load_image
    from textboost.scenetext.gt import load_dataset
    from textboost.text.filter import TextFilter
    from textboost.text.payload import decode_words

    images, _ = load_dataset(ALPR_US, 1)
    img = load_image(images[0].image)
    h, w = img.shape[:2]
    an = codec.analyse(img)
    words = codec.spot(img)  # what the analysis spotted (the spotter is deterministic)
    assert words and all(x.style is not None for x in words)
    carried = decode_words(an.text, w, h)
    assert sorted(map(repr, (x.style for x in carried))) == sorted(
        map(repr, (x.style for x in words))
    )
    assert all(abs(x.score - round(x.score * 15) / 15) < 1e-9 for x in carried)
    codec.text_filter, old = replace(codec.text_filter, style=False), codec.text_filter
    try:
        assert all(x.style is None for x in codec.spot(img))
        # the search's objective is the filter's: the styles the iou search picks
        codec.text_filter = replace(old, match_score="iou")
        plain = [replace(x, style=None) for x in words]
        want = [match_word(img, x, score="iou") for x in plain]
        got = codec.spot(img)
        assert [x.style for x in got] == [m.style if m else None for m in want]
    finally:
        codec.text_filter = old
    assert TextFilter().style and not TextFilter().colours and TextFilter().match_score == "ncc"
