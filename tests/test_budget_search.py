"""The budget search's progress steps and its shortcuts: what a progress display sees, the
coded-image pyramid, and scales ruled out by bytes without running g_a."""

from __future__ import annotations

import io

import numpy as np
import pytest

from textboost.bitstream.container import Container, coded_size
from textboost.cli import SearchProgress
from textboost.codec.budget import BUDGET_SCALES, SearchStep, fit_budget
from textboost.codec.image import psnr_db, resize


@pytest.fixture(scope="module")
def codec(pipeline):
    """These tests exercise the method (words carried, fused decode): the pipeline."""
    return pipeline


def test_progress_sees_every_encode_and_comparison(codec, kodim23):
    img = kodim23[:256, :384]
    an = codec.analyse(img, text=False)
    budget = len(codec.codec.encode_analysis(an, 0)) + 8  # full size just fits: scales compared
    steps: list[SearchStep] = []
    data = fit_budget(codec.codec, an, budget, progress=steps.append, method="full")
    kinds = [s.kind for s in steps]
    assert {"encode", "compare", "analyse"} <= set(kinds)
    encodes = [s for s in steps if s.kind == "encode"]
    assert all(0.0 <= s.rate <= 1.0 and s.budget == budget for s in encodes)
    assert len(data) <= budget
    assert any(s.n_bytes == len(data) and s.fits for s in encodes)  # the result was reported
    compared = [s.coded_size for s in steps if s.kind == "compare"]
    assert compared[0] == (384, 256) and all(w < 384 for w, _ in compared[1:])
    hd = Container.parse(data).header
    assert hd.coded_size in compared


def test_smaller_scales_resample_the_coded_image(codec, kodim23):
    an = codec.analyse(kodim23, scale=16, text=False)
    assert an.coded.shape[:2] == (256, 384)
    smaller = codec.codec.analyse_smaller(an, 32)
    w, h = coded_size(768, 512, 32)
    assert smaller.coded.shape == (h, w, 3)
    direct = resize(kodim23, w, h)
    assert np.abs(smaller.coded.astype(int) - direct).mean() < 1.0  # ≈ 0.2 grey levels


def test_scales_ruled_out_by_bytes_run_no_g_a(codec):
    """A busy 10 MP frame under a tiny budget: the ladder is walked on bytes, and g_a runs
    at only a few of its scales."""
    rng = np.random.default_rng(3)
    img = np.kron(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8), np.ones((64, 64, 1), np.uint8))
    steps: list[SearchStep] = []
    data = codec.encode_to_budget(
        img, max_bytes=120, text=False, progress=steps.append, method="full"
    )
    analysed = [s.coded_size for s in steps if s.kind == "analyse"]
    hd = Container.parse(data).header
    assert len(data) <= 120 and hd.coded_size in analysed
    walked = [sc for sc in BUDGET_SCALES if coded_size(3840, 2560, sc) in analysed]
    first = BUDGET_SCALES.index(walked[0])
    assert len(set(analysed)) < len(BUDGET_SCALES) - first  # some scales skipped


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_search_progress_draws_one_line_on_a_terminal_and_lines_into_a_file():
    steps = [SearchStep("analyse", (96, 64), 500), SearchStep("encode", (96, 64), 500, 0.5, 620),
             SearchStep("encode", (96, 64), 500, 0.25, 480, groups=3),
             SearchStep("compare", (96, 64), 500, psnr_db=27.5)]
    log = io.StringIO()
    p = SearchProgress(log)
    for s in steps:
        p(s)
    p.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 4 and "\r" not in log.getvalue()
    assert "96×64: rate 0.500 → 620 B (over)" in lines[1]
    assert "rate 0.250 → 480 B (fits, 3 y groups)" in lines[2]
    assert "PSNR 27.50 dB" in lines[3]
    tty = _Tty()
    p = SearchProgress(tty, prefix="[1/2] a.png: ")
    for s in steps:
        p(s)
    p.close()
    out = tty.getvalue()
    assert "\n" not in out and out.count("\r\x1b[K") == 5 and out.endswith("\r\x1b[K")
    assert "[1/2] a.png: budget 500 B" in out
    assert SearchProgress.enabled(False, tty) and not SearchProgress.enabled(False, log)


def test_a_winning_start_is_compared_with_larger_scales(codec, kodim23):
    """Started below the full size (as a tight start would) with room to spare, the search
    goes back up and keeps the larger scale when it decodes better."""
    img = kodim23[:256, :384]
    an = codec.analyse(img, scale=10, text=False)
    budget = 2500  # scale 10 fits at the top rate: no smaller scale is tried
    steps: list[SearchStep] = []
    data = fit_budget(codec.codec, an, budget, progress=steps.append, method="full")
    assert len(data) <= budget
    assert (384, 256) in [s.coded_size for s in steps if s.kind == "analyse"]
    start = fit_budget(codec.codec, an, budget, search=False)
    assert Container.parse(start).header.scale == 10
    if Container.parse(data).header.scale == 8:
        assert psnr_db(codec.decode(data, fusion=False), img) > psnr_db(
            codec.decode(start, fusion=False), img
        )
    else:
        assert data == start


def test_tight_start_skips_a_scale_only_rate_0_could_fit():
    from textboost.codec.budget import start_scale

    # 12 MP at 1500 B: 1/4 a side would need >= 75 % of the budget even at the lowest
    # rate, so the search starts at 1/6 and comes up only if that wins
    assert start_scale(4243, 2829, 1500, share=1.0) == 32
    assert start_scale(4243, 2829, 1500) == 48
    assert start_scale(4243, 2829, 45012) == start_scale(4243, 2829, 45012, share=1.0) == 20


def test_first_step_says_the_words_are_spotted_when_text_is_carried(codec, small_image):
    steps: list[SearchStep] = []
    codec.encode_to_budget(small_image, max_bytes=400, progress=steps.append)
    assert steps[0].kind == "spot" and steps[0].coded_size == (150, 100)
    log = io.StringIO()
    SearchProgress(log)(steps[0])
    assert "150×100: spotting words, then analysing" in log.getvalue()
