"""The codec on real images: bytes that decode, budgets, progressive groups, any image mode."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from textboost import BitstreamError
from textboost.bitstream.container import Container
from textboost.codec.budget import BudgetError, fit_budget
from textboost.codec.image import psnr_db


@pytest.fixture(scope="module")
def codec(pipeline):
    """These tests exercise the method (words carried, fused decode): the pipeline."""
    return pipeline


@pytest.fixture(scope="module")
def stream(codec, small_image) -> bytes:
    return codec.encode(small_image, rate=0.6)


def test_round_trip_shape_and_quality(codec, small_image, stream):
    out = codec.decode(stream)
    assert out.shape == small_image.shape and out.dtype == np.uint8
    flat = np.broadcast_to(small_image.reshape(-1, 3).mean(0), small_image.shape)
    assert psnr_db(out, small_image) > psnr_db(flat.round().astype(np.uint8), small_image) + 1.0


def test_decoder_latents_equal_encoder_latents(codec, small_image):
    an = codec.analyse(small_image)
    *_, y_enc = codec.codec.code_latents(an, 40_000)
    data = codec.codec.encode_analysis(an, 40_000)
    _, y_dec = codec.codec.decode_latents(data)
    assert np.array_equal(y_enc, y_dec)


def test_rate_parameter_orders_size(codec, small_image):
    an = codec.analyse(small_image)
    sizes = [len(codec.codec.encode_analysis(an, r)) for r in (0, 32768, 65535)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_partial_groups_decode_and_improve(codec, small_image, stream):
    c = Container.parse(stream)
    errors = []
    for k in range(len(c.groups) + 1):
        out = codec.decode(c.truncated(k).to_bytes())
        assert out.shape == small_image.shape
        errors.append(psnr_db(out, small_image))
    assert errors[-1] > errors[0]
    assert np.array_equal(codec.decode(stream, groups=2), codec.decode(c.truncated(2).to_bytes()))


def test_byte_budget_is_honoured(codec, kodim23):
    img = kodim23[:256, :384]
    an = codec.analyse(img)
    lo, hi = (len(codec.codec.encode_analysis(an, r)) for r in (0, 65535))
    floor = len(Container.parse(codec.codec.encode_analysis(an, 0)).truncated(0).to_bytes())
    sizes = []
    for budget in (floor + 2, lo, (lo + hi) // 2, hi + 10):
        data = codec.encode_to_budget(img, max_bytes=budget)
        assert len(data) <= budget
        assert codec.decode(data).shape == img.shape
        sizes.append(len(data))
    assert sizes == sorted(sizes) and sizes[2] > 0.8 * ((lo + hi) // 2) and sizes[3] == hi


def test_budget_below_the_lowest_rate_codes_a_smaller_image(codec, kodim23):
    img = kodim23[:256, :384]
    an = codec.analyse(img)
    full = Container.parse(codec.codec.encode_analysis(an, 0))
    budget = int(0.6 * len(full.to_bytes()))
    data = fit_budget(codec.codec, an, budget)
    c = Container.parse(data)
    assert len(data) <= budget and c.header.scale > 8 and len(c.groups) == codec.codec.n_groups
    assert c.header.coded_size[0] < 384
    out = codec.decode(data)
    assert out.shape == img.shape
    # better than the full-size stream cut down to the groups that fit
    n = codec.codec.n_groups
    keep = max(k for k in range(n + 1) if len(full.truncated(k).to_bytes()) <= budget)
    cut = codec.decode(full.truncated(keep).to_bytes())
    assert psnr_db(out, img) > psnr_db(cut, img)


def test_scale_search_keeps_the_best_stream_that_fits(codec, kodim23):
    img = kodim23[:256, :384]
    an = codec.analyse(img)
    budget = len(codec.codec.encode_analysis(an, 0)) + 8  # full size only just fits, at rate ≈ 0
    first = fit_budget(codec.codec, an, budget, search=False)
    best = fit_budget(codec.codec, an, budget)
    assert len(first) <= budget and len(best) <= budget
    assert Container.parse(first).header.scale == 8
    assert psnr_db(codec.decode(best), img) >= psnr_db(codec.decode(first), img)


def test_bpp_budget_counts_the_whole_file(codec, small_image):
    data = codec.encode_to_budget(small_image, bpp=0.5)
    assert 8 * len(data) / (150 * 100) <= 0.5


def test_impossible_budget_is_a_clear_error(codec, small_image):
    with pytest.raises(BudgetError, match="below the smallest stream"):
        codec.encode_to_budget(small_image, max_bytes=10)


def test_image_modes(codec, small_image, tmp_path):
    grey = small_image.mean(axis=2).astype(np.uint8)
    rgba = np.dstack([small_image, np.full(small_image.shape[:2], 255, np.uint8)])
    deep = small_image.astype(np.uint16) * 257
    p16 = tmp_path / "g16.png"
    Image.fromarray(deep[:, :, 0]).save(p16)
    for img in (grey, rgba, deep, p16, Image.fromarray(small_image).convert("P")):
        out = codec.decode(codec.encode(img, rate=0.3))
        assert out.shape == (100, 150, 3)


def test_tiny_and_odd_sizes(codec):
    rng = np.random.default_rng(0)
    for h, w in [(1, 1), (17, 3), (65, 130)]:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        assert codec.decode(codec.encode(img, rate=0.2)).shape == (h, w, 3)


def test_damage_in_any_section_is_named(codec, stream):
    c = Container.parse(stream)
    offset = 20
    for _i, section in enumerate(c.sections):
        n = len(section)
        head = 1 + (n >= 128) + 4
        if n:
            raw = bytearray(stream)
            raw[offset + head + n // 2] ^= 0x10
            with pytest.raises(BitstreamError, match="CRC32 mismatch"):
                codec.decode(bytes(raw))
        offset += head + n
    with pytest.raises(BitstreamError, match="truncated"):
        codec.decode(stream[:-1])


def test_foreign_model_stream(codec, stream):
    c = Container.parse(stream)
    from dataclasses import replace

    foreign = replace(c, header=replace(c.header, model_id=b"\xde\xad\xbe\xef")).to_bytes()
    with pytest.raises(BitstreamError, match="another model"):
        codec.decode(foreign)
