"""Averaging over images and BD against the anchor, on hand-made result records."""

from __future__ import annotations

import pytest

from textboost.eval.rd import RdConfig, _average, bd_against_anchor


def _pt(t, fit, bpp=None, p=None, m=None):
    if not fit:
        return {"target_bpp": t, "fit": False}
    return {"target_bpp": t, "fit": True, "bpp": bpp, "psnr_db": p, "ms_ssim": m}


def test_average_is_complete_only_when_every_image_has_a_point():
    per_image = {
        "a.png": {"points": [_pt(0.01, False), _pt(0.03, True, 0.029, 24.0, 0.80)]},
        "b.png": {
            "points": [_pt(0.01, True, 0.009, 20.0, 0.60), _pt(0.03, True, 0.027, 26.0, 0.9)]
        },
    }
    low, mid = _average(per_image, [0.01, 0.03])
    assert (low["complete"], low["n_fit"], low["psnr_db"]) == (False, 1, 20.0)
    assert mid["complete"] and mid["n_fit"] == 2
    assert mid["psnr_db"] == pytest.approx(25.0) and mid["bpp"] == pytest.approx(0.028)
    assert mid["ms_ssim"] == pytest.approx(0.85)


def _entry(rates, psnrs):
    return {
        "average": [
            {"complete": True, "bpp": r, "psnr_db": p} for r, p in zip(rates, psnrs, strict=True)
        ]
    }


def test_bd_against_anchor_reports_numbers_and_reasons():
    rates = [0.01, 0.02, 0.03, 0.05, 0.08]
    psnrs = [21.0, 22.6, 23.5, 24.7, 25.9]
    codecs = {
        "avif": _entry(rates, psnrs),
        "ours": _entry([r * 0.8 for r in rates], psnrs),
        "jpeg": _entry([0.02, 0.04], [22.0, 23.0]),
        "webp": _entry(rates, [p - 10 for p in psnrs]),
    }
    bd = bd_against_anchor(codecs)
    assert set(bd) == {"ours", "jpeg", "webp"}
    assert bd["ours"]["cubic"]["bd_rate_pct"] == pytest.approx(-20.0, abs=1e-9)
    assert bd["ours"]["pchip"]["bd_rate_pct"] == pytest.approx(-20.0, abs=1e-9)
    assert "at least 4 points" in bd["jpeg"]["cubic"]["bd_rate_pct_error"]
    assert bd["jpeg"]["pchip"]["bd_psnr_db"] < 0
    assert "do not overlap" in bd["webp"]["pchip"]["bd_rate_pct_error"]
    # 10 dB below the anchor: no PSNR overlap for BD-rate, but BD-PSNR over the rates
    assert bd["webp"]["pchip"]["bd_psnr_db"] == pytest.approx(-10.0, abs=1e-9)
    assert bd_against_anchor({"ours": codecs["ours"]}) == {}


def test_bd_window_uses_only_the_targets_inside_it():
    targets = [0.01, 0.02, 0.03, 0.05, 0.08, 0.15]
    psnrs = [20.0, 22.6, 23.5, 24.7, 25.9, 27.5]
    ours_rates = [0.02, 0.016, 0.024, 0.04, 0.064, 0.3]  # 20 % fewer bits only in the window

    def entry(rates):
        return {
            "average": [
                {"complete": True, "target_bpp": t, "bpp": r, "psnr_db": p}
                for t, r, p in zip(targets, rates, psnrs, strict=True)
            ]
        }

    codecs = {"avif": entry(targets), "ours": entry(ours_rates)}
    inside = bd_against_anchor(codecs, window=(0.02, 0.08))["ours"]
    assert inside["pchip"]["bd_rate_pct"] == pytest.approx(-20.0, abs=1e-9)
    assert inside["cubic"]["bd_rate_pct"] == pytest.approx(-20.0, abs=1e-9)
    assert bd_against_anchor(codecs)["ours"]["pchip"]["bd_rate_pct"] > -20.0


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"codecs": ()}, "no codecs"),
        ({"codecs": ("jpeg", "jpeg")}, "listed twice"),
        ({"codecs": ("jpeg",), "bpp_targets": (0.0,)}, "bpp must be in"),
        ({"codecs": ("jpeg",), "divisors": {"ours": (1.0,)}}, "not a baseline"),
        ({"codecs": ("jpeg",), "workers": 4}, "workers must be 1..2"),
    ],
)
def test_config_rejects_bad_values(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        RdConfig(**kwargs)
