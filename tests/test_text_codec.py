"""The text path through the codec: words carried inside the budget, fusion on and off."""

from __future__ import annotations

import numpy as np
import pytest

from textboost.bitstream.container import Container
from textboost.codec.image import load_image

from .conftest import SHARED

ICDAR = SHARED / "data" / "scenetext" / "icdar2015_mmocr_toy"
pytestmark = pytest.mark.skipif(not ICDAR.is_dir(), reason="../shared scene-text set absent")

@pytest.fixture(scope="module")
def codec(pipeline):
    """These tests exercise the method (words carried, fused decode): the pipeline."""
    return pipeline


@pytest.fixture(scope="module")
def sign() -> np.ndarray:
    """img_1 of ICDAR 2015 (a floor sign with small words), cut to 640×360 to keep it quick."""
    return load_image(ICDAR / "img_1.jpg")[60:420, 200:840].copy()


@pytest.fixture(scope="module")
def coded(codec, sign):
    budget = 2000
    return budget, codec.encode_to_budget(sign, max_bytes=budget)


def test_words_ride_inside_the_budget(codec, coded, sign):
    budget, data = coded
    assert len(data) <= budget
    assert len(Container.parse(data).text) > 0
    assert "carpark" in {w.text.lower() for w in codec.words(data)}
    alone = codec.encode_to_budget(sign, max_bytes=budget, text=False)
    assert Container.parse(alone).text == b"" and codec.words(alone) == []
    # the text is paid for inside the same budget: the image part gets fewer bytes
    c, a = Container.parse(data), Container.parse(alone)
    assert len(c.z) + sum(map(len, c.groups)) < len(a.z) + sum(map(len, a.groups)) + 8


def test_no_fusion_is_the_codec_alone_bit_for_bit(codec, coded):
    from textboost import Pipeline

    _, data = coded
    bare = Pipeline.load(fusion=False)
    assert bare.fusion is None
    plain = bare.decode(data)
    assert np.array_equal(codec.decode(data, fusion=False), plain)
    # the text section does not touch the image path: the same stream without it decodes
    # to the same pixels
    c = Container.parse(data)
    stripped = Container(c.header, b"", c.z, c.groups).to_bytes()
    assert np.array_equal(bare.decode(stripped), plain)
    with pytest.raises(ValueError, match="without its fusion block"):
        bare.decode(data, fusion=True)


def test_fusion_runs_on_the_rendered_words(coded):
    import torch

    from textboost import Pipeline
    from textboost.fusion.model import FusionBlock
    from textboost.fusion.runtime import apply_fusion
    from textboost.text.render import render_guidance

    _, data = coded
    torch.manual_seed(0)
    block = FusionBlock()
    torch.nn.init.normal_(block.project.weight, std=0.05)  # a non-identity block
    base = Pipeline.load(fusion=False)
    fused = Pipeline(base.codec, block.eval())
    plain = base.decode(data)
    h, w = plain.shape[:2]
    out = fused.decode(data)
    expect = apply_fusion(block, plain, render_guidance(base.words(data), w, h))
    assert np.array_equal(out, expect)
    assert not np.array_equal(out, plain)
    # no words: the zero map, and the block still runs as a post-filter
    c = Container.parse(data)
    bare = Container(c.header, b"", c.z, c.groups).to_bytes()
    assert np.array_equal(fused.decode(bare), apply_fusion(block, plain, np.zeros((h, w))))
