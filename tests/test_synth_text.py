"""Synthetic scene text: deterministic under a seed, and its boxes lie where its text is."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import KODAK, SHARED
from textboost.text.words import Word
from textboost.train.synth_text import SceneTextGenerator, SynthConfig, text_mask

PHOTOS = SHARED / "data" / "photos" / "bsds500"


@pytest.fixture(scope="module")
def gen() -> SceneTextGenerator:
    return SceneTextGenerator([PHOTOS], SynthConfig(max_side=400))


def test_deterministic_under_a_seed(gen):
    a, b = gen.generate(5, 3), gen.generate(5, 3)
    assert np.array_equal(a.image, b.image)
    assert [w.text for w in a.words] == [w.text for w in b.words]
    assert all(np.array_equal(u.quad, v.quad) for u, v in zip(a.words, b.words, strict=True))
    c = gen.generate(5, 4)
    assert not np.array_equal(a.image, c.image) or a.photo != c.photo


@pytest.mark.parametrize("index", [0, 1, 2])
def test_boxes_hold_the_text(gen, index):
    s = gen.generate(7, index)
    h, w = s.image.shape[:2]
    assert s.words, "every sample carries text"
    inside = cv2.dilate(text_mask(s.words, w, h), np.ones((5, 5), np.uint8)) > 0
    ink = s.ink > 128
    assert ink.any()
    assert not (ink & ~inside).any(), "glyph pixels outside every ground-truth quad"
    for word in s.words:
        q = text_mask([word], w, h) > 0
        assert (ink & q).sum() >= 3, f"no glyphs inside the quad of {word.text!r}"
        assert word.text.strip()
        # ICDAR order: clockwise in image coordinates (positive shoelace area with y down)
        x, y = word.quad[:, 0], word.quad[:, 1]
        assert float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) > 0


def test_small_text_reaches_seven_pixels(gen):
    small = SceneTextGenerator([PHOTOS], SynthConfig(max_side=400, cap_px=(7.0, 7.5)))
    s = small.generate(1, 0)
    heights = [np.linalg.norm(w.quad[3] - w.quad[0]) for w in s.words]
    assert heights and max(heights) < 16  # cap 7 px plus descenders and a 1-px margin


def test_text_mask_fills_quads():
    m = text_mask([Word(np.array([[2, 2], [9, 2], [9, 5], [2, 5]]), "ab")], 12, 8)
    assert m.dtype == np.float32 and m[3, 5] == 1 and m[0, 0] == 0 and m.sum() == 8 * 4


def test_refuses_kodak():
    with pytest.raises(ValueError, match="Kodak"):
        SceneTextGenerator([KODAK])
