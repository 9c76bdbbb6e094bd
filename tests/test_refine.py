"""Encoder-side latent refinement (``effort``, issue 13): refined streams are ordinary
streams (the decoder's ŷ is the encoder's, and the torch and numpy exact paths compute
the same parameters for them), budgets hold on real bytes, effort 0 is today's encoder,
and the options and errors are wired through the API, the policies and the CLIs.

Small Kodak crops and effort 1 (12 iterations) keep this module to a few seconds.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

from textboost.bitstream.container import Container
from textboost.codec.budget import BudgetSearch, fit_budget
from textboost.codec.exact import dequantize_q6, interp_gain_q6, scale_index, step_q22
from textboost.codec.image import psnr_db
from textboost.codec.rate import ByteBudget, FixedBpp, FixedRate
from textboost.codec.refine import (
    EFFORT_ITERATIONS,
    _fit_near,
    check_effort,
    refine_analysis,
    refine_to_budget,
    torch_net,
)

torch = pytest.importorskip("torch")

RATE_Q = 20000


@pytest.fixture(scope="module")
def crop(kodim23) -> np.ndarray:
    return kodim23[180:276, 260:388].copy()  # 128×96, real texture


@pytest.fixture(scope="module")
def refined(codec, crop):
    torch.set_num_threads(1)
    an = codec.analyse(crop)
    return an, refine_analysis(codec, an, RATE_Q, 1)


def test_check_effort():
    assert [check_effort(e) for e in range(len(EFFORT_ITERATIONS))] == [0, 1, 2]
    for bad in (-1, len(EFFORT_ITERATIONS), 1.0, True, "1"):
        with pytest.raises(ValueError, match="effort"):
            check_effort(bad)


def test_effort_zero_is_todays_encoder(codec, crop):
    an = codec.analyse(crop)
    assert refine_analysis(codec, an, RATE_Q, 0) is an
    data = codec.encode(crop, rate=RATE_Q / 65535)
    assert codec.encode(crop, rate=RATE_Q / 65535, effort=0) == data
    assert data == codec.encode_analysis(an, RATE_Q)


def test_refinement_changes_symbols_and_is_reproducible(codec, refined):
    an, ref = refined
    assert ref.z is an.z and ref.y.shape == an.y.shape
    assert 0 < np.abs(ref.y - an.y).max() < 3  # moved, but near g_a's latents
    a, b = codec.encode_analysis(an, RATE_Q), codec.encode_analysis(ref, RATE_Q)
    assert a != b
    assert codec.encode_analysis(refine_analysis(codec, an, RATE_Q, 1), RATE_Q) == b  # seeded


def test_refined_stream_decodes_to_the_coded_latents(codec, refined):
    _, ref = refined
    _, _, y_coded = codec.code_latents(ref, RATE_Q)
    _, y_dec = codec.decode_latents(codec.encode_analysis(ref, RATE_Q))
    assert np.array_equal(y_dec, y_coded)


def test_refined_stream_parameters_match_torch_float64(codec, refined):
    """The exact-parameter check on a refined stream: μ and scale indices the numpy coder
    used equal the torch float64 image of the same integer layers on the decoded ŷ."""
    from textboost.codec.backends import load_torch_net

    _, ref = refined
    seen: dict[tuple[int, bool], tuple[np.ndarray, np.ndarray]] = {}
    z_hat = codec.quantise_z(ref.z, RATE_Q)
    z_step = step_q22(interp_gain_q6(codec.z_gain_anchors_q6, RATE_Q))
    hyper = codec.hyper(z_hat, RATE_Q)
    _, y_dec = codec.decode_latents(codec.encode_analysis(ref, RATE_Q))
    gain = interp_gain_q6(codec.gain_anchors_q6, RATE_Q)
    starts = np.cumsum([0, *codec.cfg.groups])
    for k in range(codec.n_groups):
        yk = y_dec[..., starts[k] : starts[k + 1]]

        def record(k, rows, mu, idx, step, yk=yk):
            seen[k, bool(rows[0, 0, 0])] = (mu, idx)
            sym = (yk[rows] - mu) * 65536 / step  # invert dequantize_q6 up to rounding
            sym = np.round(sym).astype(np.int64)
            assert np.array_equal(dequantize_q6(mu, sym, step), yk[rows])
            return sym

        codec.params.code_group(k, hyper, y_dec[..., : starts[k]] if k else None, gain, record)
    net = load_torch_net(codec.model).double()
    sc = net.scctx

    def nchw(a):
        return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2), dtype=np.float64))

    _, h, w, _ = y_dec.shape
    anchors = (np.arange(h)[:, None] + np.arange(w)[None, :]) % 2 == 0
    with torch.no_grad():
        hyper_t = sc.hyper(nchw(_z_q6(z_hat, z_step))).numpy().transpose(0, 2, 3, 1)
        assert np.array_equal(hyper_t, hyper)
        for k, g in enumerate(codec.cfg.groups):
            s0 = starts[k]
            hyp = nchw(hyper[..., 2 * s0 : 2 * (s0 + g)])
            ch = sc.channel_context(k, nchw(y_dec[..., :s0])) if k else None
            yk = y_dec[..., s0 : s0 + g] * anchors[None, :, :, None]
            for is_anchor in (True, False):
                sp = sc.spatial_context(k, nchw(yk))
                if is_anchor:
                    sp = torch.zeros_like(sp)
                mu, ls = sc.params(k, hyp, ch, sp)
                rows = anchors if is_anchor else ~anchors
                mu_t = mu.numpy().transpose(0, 2, 3, 1)[0][rows]
                ls_t = ls.numpy().transpose(0, 2, 3, 1)[0][rows]
                mu_n, idx_n = seen[k, is_anchor]
                assert np.array_equal(mu_n, mu_t), (k, is_anchor)
                assert np.array_equal(idx_n, scale_index(ls_t, gain[s0 : s0 + g]))


def _z_q6(z_hat: np.ndarray, z_step: np.ndarray) -> np.ndarray:
    return dequantize_q6(np.zeros_like(z_hat, dtype=np.int64), z_hat.astype(np.int64), z_step)


def test_budget_refinement_fits_and_never_decodes_worse(codec, crop):
    torch.set_num_threads(1)
    an = codec.analyse(crop)
    budget = 140
    data0 = fit_budget(codec, an, budget, search=False)
    steps = []
    data1 = refine_to_budget(codec, an, data0, budget, 1, progress=steps.append)
    assert len(data1) <= budget
    assert steps[0].kind == "refine" and steps[0].iterations == 12
    assert sum(s.kind == "compare" for s in steps) == 2  # refined and unrefined decoded
    psnr0, psnr1 = (psnr_db(codec.decode_coded(d)[1], crop) for d in (data0, data1))
    assert psnr1 >= psnr0
    assert Container.parse(data1).header.scale == Container.parse(data0).header.scale


def test_overflowing_refined_stream_steps_the_rate_down(codec, refined, monkeypatch):
    import textboost.codec.refine as refine

    _, ref = refined
    at_rate = codec.encode_analysis(ref, RATE_Q)
    # streams grow in 4-byte words: a bracket wide enough to reach a smaller stream
    monkeypatch.setattr(refine, "RATE_BRACKET", 6000)
    budget = len(at_rate) - 1
    data = _fit_near(BudgetSearch(codec, budget, None), ref, RATE_Q)
    assert data is not None and len(data) <= budget
    assert Container.parse(data).header.rate < RATE_Q
    assert _fit_near(BudgetSearch(codec, 40, None), ref, RATE_Q) is None  # nothing near fits


def test_encode_to_budget_with_effort_keeps_the_budget(codec, crop):
    data = codec.encode_to_budget(crop, max_bytes=150, effort=1)
    assert len(data) <= 150
    assert codec.decode(data).shape == crop.shape


def test_policies_carry_effort_in_their_cache_key():
    assert FixedBpp(0.03).settings == "bpp=0.03"  # unchanged at effort 0
    assert FixedBpp(0.03, 1).settings == "bpp=0.03;effort=1"
    assert ByteBudget(900, 2).settings == "max_bytes=900;effort=2"
    assert FixedRate(0.5, 1).settings == "rate=0.5;effort=1"
    with pytest.raises(ValueError, match="effort 3"):
        FixedRate(0.5, 3)


def test_torch_missing_is_a_one_line_error(codec, monkeypatch):
    class Exported:  # a codec on an exported backend: transforms without a torch net
        transforms = object()
        model = codec.model

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    with pytest.raises(ValueError, match="torch") as e:
        torch_net(Exported())
    assert "\n" not in str(e.value)


def test_cli_encode_effort(tmp_path, crop, capsys):
    from textboost.__main__ import main
    from uplink.cli import main as uplink_main

    src = tmp_path / "in.png"
    Image.fromarray(crop[:64, :64]).save(src)
    out = tmp_path / "a.tbx"
    assert main(["encode", str(src), str(out), "--rate", "0.3", "--no-text",
                 "--effort", "1"]) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith(str(out))
    assert Container.parse(out.read_bytes()).header.rate == round(0.3 * 65535)
    out2 = tmp_path / "b.tbx"
    assert uplink_main(["encode", str(src), str(out2), "--max-bytes", "150", "--no-text",
                        "--effort", "1", "--json"]) == 0  # fmt: skip
    res = json.loads(capsys.readouterr().out)
    assert res["bytes"] == out2.stat().st_size <= 150
    with pytest.raises(SystemExit) as e:
        main(["encode", str(src), str(out), "--rate", "0.3", "--effort", "9"])
    assert e.value.code == 2
