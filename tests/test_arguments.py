"""Bad arguments and images are refused before any work, in one line that says what is
wrong: the Codec API (ValueError), `python -m textboost` and `python -m uplink` alike
(textboost.codec.rate holds the checks)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from textboost.__main__ import main as textboost_main
from textboost.codec.budget import BudgetError
from textboost.codec.rate import MIN_BUDGET_BYTES, ByteBudget, FixedBpp, FixedRate
from uplink.cli import main as uplink_main

ONE = np.zeros((1, 1, 3), np.uint8)

@pytest.fixture(scope="module")
def codec(pipeline):
    """These tests exercise the method (words carried, fused decode): the pipeline."""
    return pipeline


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bpp": -0.5}, r"^bpp -0\.5: expected a positive number$"),
        ({"bpp": float("nan")}, r"^bpp nan: expected a positive number$"),
        ({"max_bytes": 0}, r"^max_bytes 0: expected a positive number of bytes$"),
        ({"max_bytes": 5}, r"^max_bytes 5: below the smallest stream of any image \(32 bytes"),
    ],
)
def test_codec_api_refuses_bad_budgets(codec, small_image, kwargs, message):
    with pytest.raises(ValueError, match=message):
        codec.encode_to_budget(small_image, **kwargs)


def test_codec_api_refuses_bad_rate(codec, small_image):
    with pytest.raises(ValueError, match=r"^rate 2: expected a number from 0 to 1$"):
        codec.encode(small_image, rate=2)


def test_image_too_small_for_bpp_names_the_file_and_the_smallest_size(codec, tmp_path):
    with pytest.raises(BudgetError, match=r"^image: 1×1 pixels is too small to code at 0\.03"):
        codec.encode_to_budget(ONE, bpp=0.03)
    path = tmp_path / "one.png"
    Image.fromarray(ONE).save(path)
    with pytest.raises(BudgetError) as e:
        codec.encode_to_budget(path, bpp=0.03)
    assert str(e.value) == (
        f"{path}: 1×1 pixels is too small to code at 0.03 bpp (0 bytes, and the smallest "
        "stream is 32 bytes: at least 93×93 at this bpp)"
    )
    assert 0.03 * 93 * 93 / 8 >= MIN_BUDGET_BYTES > 0.03 * 92 * 92 / 8


def test_min_budget_bytes_is_the_real_smallest_stream(codec):
    """The up-front bound is exact: a 1×1 image fits it, and no stream is smaller."""
    data = codec.encode_to_budget(ONE, max_bytes=MIN_BUDGET_BYTES, text=False)
    assert len(data) == MIN_BUDGET_BYTES
    assert codec.decode(data, fusion=False).shape == (1, 1, 3)


def test_budget_below_this_images_smallest_stream_says_the_minimum(codec):
    """A 10 MP frame's smallest stream (z of 2 × 2 positions at 1/32 size) is over 32 bytes:
    the search says how many."""
    rng = np.random.default_rng(3)
    img = np.kron(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8), np.ones((64, 64, 1), np.uint8))
    with pytest.raises(BudgetError) as e:
        codec.encode_to_budget(img, max_bytes=33, text=False)
    m = re.match(r"budget 33 bytes is below the smallest stream of this image \((\d+) bytes",
                 str(e.value))
    assert m and int(m.group(1)) > 33, str(e.value)


def test_policies_use_the_same_wording():
    with pytest.raises(ValueError, match=r"^bpp -0\.5: expected a positive number$"):
        FixedBpp(-0.5)
    with pytest.raises(ValueError, match=r"^bpp 30: expected at most 24"):
        FixedBpp(30)
    with pytest.raises(ValueError, match=r"^max_bytes 5: below the smallest stream"):
        ByteBudget(5)
    with pytest.raises(ValueError, match=r"^rate 1\.5: expected a number from 0 to 1$"):
        FixedRate(1.5)
    with pytest.raises(BudgetError, match=r"^x\.png: 1×1 pixels is too small"):
        FixedBpp(0.03).check(1, 1, "x.png")
    FixedBpp(0.03).check(100, 100, "x.png")


@pytest.fixture
def one_png(tmp_path):
    path = tmp_path / "one.png"
    Image.fromarray(ONE).save(path)
    return path


CLI_CASES = [
    (["--bpp", "-0.5"], "--bpp -0.5: expected a positive number"),
    (["--max-bytes", "0"], "--max-bytes 0: expected a positive number of bytes"),
    (["--max-bytes", "5"], "--max-bytes 5: below the smallest stream of any image (32 bytes: "
                           "header and z); expected at least 32"),
    (["--rate", "2"], "--rate 2.0: expected a number from 0 to 1"),
    (["--bpp", "0.03"], "{img}: 1×1 pixels is too small to code at 0.03 bpp (0 bytes, and the "
                        "smallest stream is 32 bytes: at least 93×93 at this bpp)"),
]


@pytest.mark.parametrize(("opts", "message"), CLI_CASES, ids=[c[0][0] + c[0][1] for c in CLI_CASES])
def test_textboost_cli_messages(one_png, tmp_path, capsys, opts, message):
    rc = textboost_main(["encode", str(one_png), str(tmp_path / "o.tbx"), *opts, "--no-text"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == f"error: {message.format(img=one_png)}\n"


@pytest.mark.parametrize(("opts", "message"), CLI_CASES, ids=[c[0][0] + c[0][1] for c in CLI_CASES])
def test_uplink_encode_messages(one_png, tmp_path, capsys, opts, message):
    with pytest.raises(SystemExit) as e:
        uplink_main(["encode", str(one_png), str(tmp_path / "o.tbx"), *opts, "--no-text"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err == f"python -m uplink: error: {message.format(img=one_png)}\n"


def test_uplink_send_checks_options_before_any_work(one_png, capsys):
    with pytest.raises(SystemExit) as e:
        uplink_main(["send", str(one_png), "--to", "127.0.0.1:9", "--bpp", "-0.5"])
    assert e.value.code == 2
    assert capsys.readouterr().err.endswith("error: --bpp -0.5: expected a positive number\n")
