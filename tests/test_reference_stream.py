"""The bitstream is pinned: a committed reference `.tbx` (tests/data/, made by
tests/data/make_reference.py, provenance in reference.json) must come out of the encoder
byte for byte and decode to the recorded pixels. A change that moves either fails here;
if the change is meant, run the script again and say so in the commit."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

from tests.conftest import needs_torch

pytestmark = pytest.mark.edge

DATA = Path(__file__).resolve().parent / "data"
META = json.loads((DATA / "reference.json").read_text())

@pytest.fixture(scope="module")
def codec(pipeline):
    """These tests exercise the method (words carried, fused decode): the pipeline."""
    return pipeline


def _make_reference():
    spec = importlib.util.spec_from_file_location("make_reference", DATA / "make_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_provenance_is_complete():
    ref = _make_reference()
    assert META["made_by"] == "tests/data/make_reference.py"
    assert META["source"] == ref.SOURCE and tuple(META["crop_xywh"]) == ref.CROP
    assert META["rate"] == ref.RATE
    data = (DATA / "reference.tbx").read_bytes()
    assert len(data) == META["tbx_bytes"]
    assert hashlib.sha256(data).hexdigest() == META["tbx_sha256"]


def test_encoder_reproduces_the_reference_stream(codec):
    assert codec.model_id.hex() == META["model_id"]
    data = codec.encode(_make_reference().reference_crop(), rate=META["rate"])
    assert hashlib.sha256(data).hexdigest() == META["tbx_sha256"], (
        f"the encoder's bitstream moved ({len(data)} bytes, reference {META['tbx_bytes']}); "
        "if that is intended, run tests/data/make_reference.py"
    )


@needs_torch  # the recorded pixels are torch's g_s; ONNX Runtime's differ in float bits
def test_decoder_reproduces_the_reference_pixels(codec):
    pixels = codec.decode((DATA / "reference.tbx").read_bytes(), fusion=False)
    assert list(pixels.shape) == META["decoded_shape"]
    assert hashlib.sha256(pixels.tobytes()).hexdigest() == META["decoded_pixels_sha256"], (
        "the decoded reference image changed; if that is intended, run "
        "tests/data/make_reference.py"
    )
