"""The baseline budget search: real bytes, never over budget, the best quality that fits."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from textboost.codec.image import psnr_db
from textboost.eval.baselines import BASELINE_NAMES, CodecUnavailableError, get_baseline
from textboost.eval.budget import (
    budget_bytes,
    reconstruct,
    scaled_size,
    search_budgets,
)


def _image(seed: int, w: int, h: int) -> np.ndarray:
    """Smooth gradients plus noise: compresses like a photo, not like pure noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], axis=-1)
    return np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def _codec(name: str):
    try:
        return get_baseline(name)
    except CodecUnavailableError as exc:
        pytest.skip(str(exc))


def test_budget_bytes_floors():
    assert budget_bytes(0.03, 768, 512) == 1474  # 1474.56
    assert budget_bytes(0.01, 512, 768) == 491
    with pytest.raises(ValueError, match=r"bpp 0\.0: expected a positive number"):
        budget_bytes(0.0, 10, 10)


def test_scaled_size_rounds_and_keeps_one_pixel():
    assert scaled_size(768, 512, 1.5) == (512, 341)
    assert scaled_size(5, 3, 8) == (1, 1)
    with pytest.raises(ValueError, match=">= 1"):
        scaled_size(10, 10, 0.5)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    w=st.integers(24, 64),
    h=st.integers(24, 64),
    budgets=st.lists(st.integers(0, 3000), min_size=1, max_size=4),
    name=st.sampled_from(["jpeg", "webp"]),
)
def test_search_never_exceeds_a_budget(seed, w, h, budgets, name):
    img = _image(seed, w, h)
    codec = get_baseline(name)
    res = search_budgets(img, codec, budgets, divisors=(1.0, 2.0, 4.0))
    for budget, cand in zip(budgets, res.best, strict=True):
        if cand is None:
            continue
        assert cand.n_bytes <= budget
        recon = reconstruct(codec, cand, (w, h))  # the bytes are a real decodable file
        assert recon.shape == img.shape
        assert cand.psnr_db == pytest.approx(psnr_db(img, recon), abs=1e-9)


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_full_size_pick_is_the_largest_fitting_quality(name):
    """Verified on real encodes: quality q fits, q + 1 does not (or q is the top)."""
    codec = _codec(name)
    img = _image(7, 48, 40)
    pil = Image.fromarray(img)
    floor = len(codec.encode(pil, codec.quality_min))
    budget = floor + 400
    res = search_budgets(img, codec, [budget], divisors=(1.0,))
    cand = res.best[0]
    assert cand is not None and cand.divisor == 1.0
    assert len(codec.encode(pil, cand.quality)) == cand.n_bytes <= budget
    if cand.quality < codec.quality_max:
        assert len(codec.encode(pil, cand.quality + 1)) > budget
    assert res.monotonicity_violations >= 0 and res.n_encodes >= 2


def test_downscaling_fits_budgets_that_full_size_cannot():
    codec = get_baseline("jpeg")
    img = _image(3, 96, 96)
    full_floor = len(codec.encode(Image.fromarray(img), codec.quality_min))
    res = search_budgets(img, codec, [full_floor - 1], divisors=(1.0, 2.0, 4.0))
    cand = res.best[0]
    assert cand is not None and cand.divisor > 1.0
    assert cand.n_bytes < full_floor
    assert Image.open(io.BytesIO(cand.data)).size == cand.coded_size


def test_nothing_fits_is_recorded_not_overshot():
    res = search_budgets(_image(1, 32, 32), get_baseline("jpeg"), [50, 100000], divisors=(1.0,))
    assert res.best[0] is None  # a JFIF header alone is larger than 50 bytes
    assert res.best[1] is not None


def test_search_rejects_bad_arguments():
    img = _image(0, 16, 16)
    with pytest.raises(ValueError, match="no budgets"):
        search_budgets(img, get_baseline("jpeg"), [])
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        search_budgets(img.astype(np.float32), get_baseline("jpeg"), [100])
    with pytest.raises(ValueError, match='unknown baseline codec "bpg"'):
        get_baseline("bpg")
