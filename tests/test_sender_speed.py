"""The sender's shortcuts keep its streams: spotting beside g_a, and the predicted-bytes
budget search (its rate model, its fit, its agreement with the full search)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textboost.bitstream.container import FULL_SCALE, Container, coded_size
from textboost.codec.budget import (
    CLOSE_ENOUGH,
    BudgetError,
    BudgetSearch,
    SearchStep,
    chosen_scale,
    fit_budget,
    rival_scale,
    start_scale,
)
from textboost.codec.estimate import code_and_model
from textboost.codec.image import load_image

from .conftest import REPO


@pytest.fixture(scope="module")
def codec(pipeline):
    """These tests exercise the method (words carried, fused decode): the pipeline."""
    return pipeline


class _ThreadSpotter:
    """The real spotter, recording the thread it ran in."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.threads: list[str] = []

    def spot(self, img):
        self.threads.append(threading.current_thread().name)
        return self.inner.spot(img)


def test_spotting_beside_g_a_gives_the_serial_stream(codec):
    img = load_image(REPO / "link_sim" / "data" / "kodak_text" / "kodim03_text.png")[:256, :384]
    spotter = codec._spotter
    recorder = _ThreadSpotter(codec.spotter)
    codec._spotter = recorder
    try:
        streams = {}
        for overlap in (True, False):
            codec.overlap_spotting = overlap
            streams[overlap] = codec.encode_to_budget(img, max_bytes=900)
    finally:
        codec._spotter, codec.overlap_spotting = spotter, True
    assert streams[True] == streams[False]
    assert Container.parse(streams[True]).text not in (b"", b"\x00")  # words were carried
    main = threading.current_thread().name
    assert recorder.threads[0] != main and recorder.threads[1] == main


def test_rate_model_is_exact_at_its_anchor_and_close_nearby(codec, kodim23):
    an = codec.analyse(kodim23[:384, :512], text=False)
    data, model = code_and_model(codec.codec, an, 30000)
    assert data == codec.codec.encode_analysis(an, 30000)  # observing changes nothing
    assert model.predict(30000) == len(data)
    for rate in (24000, 36000):
        real = len(codec.codec.encode_analysis(an, rate))
        assert abs(model.predict(rate) / real - 1) < 0.15
    assert model.predict(20000) < model.predict(30000) < model.predict(40000)


@pytest.mark.parametrize("name", ["kodim07", "kodim12", "kodim20"])
@pytest.mark.parametrize("bpp", [0.05, 0.12])
def test_predicted_rate_search_fits_and_agrees_with_the_full_one(codec, name, bpp):
    """On real bytes every time: the stream fits, and where both searches end on the
    same rate they return the same bytes."""
    img = load_image(REPO / "link_sim" / "data" / "kodak" / f"{name}.png")[:256, :384]
    an = codec.analyse(img, text=False)
    budget = int(bpp * 384 * 256 / 8)
    found = {}
    for predict in (True, False):
        s = BudgetSearch(codec.codec, budget, None, predict=predict)
        data, _ = s.fit_all_groups(an)
        found[predict] = (data, s.codings)
    (fast, n_fast), (full, n_full) = found[True], found[False]
    assert fast is not None and full is not None
    assert len(fast) <= budget and len(full) <= budget
    rates = [Container.parse(d).header.rate for d in (fast, full)]
    if rates[0] == rates[1]:
        assert fast == full
    assert len(fast) >= (1 - 2 * CLOSE_ENOUGH) * len(full)
    assert n_fast <= n_full + 1


def test_predicted_budget_search_fits_every_image_of_a_set(codec):
    for name in ("kodim03", "kodim16", "kodim23"):
        img = load_image(REPO / "link_sim" / "data" / "kodak" / f"{name}.png")[::2, ::2]
        an = codec.analyse(img, text=False)
        for budget in (300, 700, 1500):
            data = fit_budget(codec.codec, an, budget)
            assert len(data) <= budget
            np.testing.assert_equal(Container.parse(data).header.width, img.shape[1])


def test_predicted_search_analyses_only_the_chosen_scale(codec):
    """A busy 10 MP frame under a tiny budget: the scale comes from the budget per coded
    pixel, so g_a runs once (the full search walks the ladder on real bytes)."""
    rng = np.random.default_rng(3)
    img = np.kron(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8), np.ones((64, 64, 1), np.uint8))
    assert rival_scale(3840, 2560, 400) is None  # no near tie with a larger scale
    steps: list[SearchStep] = []
    data = codec.encode_to_budget(img, max_bytes=400, text=False, progress=steps.append)
    analysed = [s.coded_size for s in steps if s.kind == "analyse"]
    assert len(data) <= 400 and not any(s.kind == "compare" for s in steps)
    hd = Container.parse(data).header
    assert analysed == [hd.coded_size] and hd.scale == chosen_scale(3840, 2560, 400)


def test_checked_search_keeps_the_better_of_a_near_tie(codec, kodim23):
    """``method="check"``: where the next larger scale is nearly as close to the target
    bits per coded pixel, both are coded and the one decoding closer to the source is
    kept, compared at the larger one's coded size."""
    from textboost.codec.image import psnr_db, resize

    img = kodim23[:256, :384]
    h, w = img.shape[:2]
    n = int(0.03 * w * h / 8)
    pick, rival = chosen_scale(w, h, n), rival_scale(w, h, n)
    assert rival is not None and rival < pick
    steps: list[SearchStep] = []
    data = codec.encode_to_budget(
        img, max_bytes=n, text=False, progress=steps.append, method="check"
    )
    sizes = {coded_size(w, h, sc) for sc in (pick, rival)}
    assert {s.coded_size for s in steps if s.kind == "analyse"} == sizes
    assert len([s for s in steps if s.kind == "compare"]) == 2
    ref = resize(img, *coded_size(w, h, rival))
    scores = {}
    for scale in (pick, rival):
        an = codec.analyse(img, scale=scale, text=False)
        cand = fit_budget(codec.codec, an, n, search=False)
        out = codec.codec.decode_coded(cand)[1]
        scores[scale] = (psnr_db(resize(out, *ref.shape[1::-1]), ref), cand)
    best = max(scores.values(), key=lambda t: t[0])[1]
    assert len(data) <= n and Container.parse(data).header.scale in (pick, rival)
    assert data == best


def test_chosen_scale_follows_the_budget_per_coded_pixel():
    w, h = 768, 512
    scales = [chosen_scale(w, h, int(bpp * w * h / 8)) for bpp in (0.02, 0.03, 0.06, 0.12, 1)]
    assert scales == sorted(scales, reverse=True)  # more bytes, larger coded image
    assert scales[-1] == FULL_SCALE and scales[0] > FULL_SCALE
    assert chosen_scale(4000, 3000, 1 << 20) == start_scale(4000, 3000)  # memory cap


def test_a_sender_loads_its_models_once_for_many_images(tmp_path, kodim23):
    """`uplink send` and `uplink serve` encode through one pipeline: one codec, one
    spotter, whatever the number of images."""
    from PIL import Image

    from textboost.codec.rate import ByteBudget
    from textboost.pipeline.api import Pipeline
    from textboost.pipeline.loader import PipelineLoader
    from uplink.encode import EncodePipeline

    loads = []

    def load():
        loads.append(Pipeline.load(fusion=False))
        return loads[-1]

    pipe = EncodePipeline(ByteBudget(600), None, PipelineLoader(factory=load), meta=False)
    spotters = []
    for i in range(3):
        path = tmp_path / f"{i}.png"
        Image.fromarray(kodim23[64 * i : 64 * i + 128, :192]).save(path)
        assert len(pipe.encode(path).data) <= 600
        spotters.append(pipe.codec._spotter)
    assert len(loads) == 1 and spotters[0] is not None
    assert all(s is spotters[0] for s in spotters)


def test_a_chosen_scale_that_cannot_spend_the_budget_is_coded_larger(codec):
    """A smooth image whose chosen scale fits at its highest rate with bytes to spare goes
    up the ladder until the budget is spent or the full size is reached."""
    ramp = np.linspace(60, 190, 384).astype(np.uint8)
    img = np.ascontiguousarray(np.broadcast_to(ramp[None, :, None], (256, 384, 3)))
    h, w = img.shape[:2]
    n = int(0.03 * w * h / 8)
    assert chosen_scale(w, h, n) > FULL_SCALE
    data = codec.encode_to_budget(img, max_bytes=n, text=False)
    hd = Container.parse(data).header
    assert len(data) <= n and hd.scale < chosen_scale(w, h, n)
    assert hd.scale == FULL_SCALE or len(data) >= (1 - CLOSE_ENOUGH) * n or hd.rate < 65535


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(budget=st.integers(32, 4000), x=st.integers(0, 400), y=st.integers(0, 300))
def test_predicted_search_never_exceeds_any_budget(codec, kodim23, budget, x, y):
    img = kodim23[y : y + 160, x : x + 224]
    try:
        data = codec.encode_to_budget(img, max_bytes=budget, text=False)
    except BudgetError as e:
        assert "below the smallest stream" in str(e)
        return
    assert len(data) <= budget
    assert Container.parse(data).header.width == img.shape[1]


def test_an_unknown_search_method_is_one_clear_error(codec, small_image):
    with pytest.raises(ValueError, match=r"method 'fast': expected one of predict, check, full"):
        codec.encode_to_budget(small_image, max_bytes=500, text=False, method="fast")


def test_cli_encode_search_method_reaches_the_search(codec, kodim23, tmp_path):
    """``textboost encode --search check`` writes the API's ``method="check"`` stream (a
    near tie here, so it differs from ``predict`` in what it compared); a method the
    search does not know is a usage error."""
    from PIL import Image

    from textboost.__main__ import main

    img = kodim23[:256, :384]
    src = tmp_path / "in.png"
    Image.fromarray(img).save(src)
    n = int(0.03 * img.shape[0] * img.shape[1] / 8)
    for method in ("check", "predict"):
        out = tmp_path / f"{method}.tbx"
        argv = ["encode", str(src), str(out), "--max-bytes", str(n), "--no-text", "--no-meta"]
        assert main([*argv, "--search", method]) == 0
        want = codec.encode_to_budget(img, max_bytes=n, text=False, method=method)
        assert out.read_bytes() == want
    with pytest.raises(SystemExit) as e:
        main(["encode", str(src), str(out), "--max-bytes", str(n), "--search", "fast"])
    assert e.value.code == 2
