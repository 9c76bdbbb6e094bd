"""TensorRT (issue 12): the CLI's refusal where tensorrt is absent, the engine cache key, and
the backend against ONNX Runtime, which skips with require_tensorrt's reason without it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from textboost.codec.trt_runtime import (
    TensorRTUnavailable,
    engine_key,
    require_tensorrt,
    shape_profiles,
)

try:
    require_tensorrt(runtime=True)
    TRT_MISSING = None
except TensorRTUnavailable as e:
    TRT_MISSING = str(e)

needs_trt = pytest.mark.skipif(TRT_MISSING is not None, reason=TRT_MISSING or "")


@pytest.mark.skipif(TRT_MISSING is None, reason="tensorrt is installed here")
def test_trt_cli_without_tensorrt_says_so_and_exits_2(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "export", "trt", "--onnx", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "tensorrt is not importable" in lines[0]


@pytest.mark.skipif(TRT_MISSING is None, reason="tensorrt is installed here")
def test_tensorrt_backend_without_tensorrt_is_a_clear_error():
    from textboost import Pipeline
    from textboost.codec.exported import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="tensorrt is not importable"):
        Pipeline.load(backend="tensorrt")


def test_engine_cache_key_covers_gpu_version_precision_and_profile():
    gpu = {"name": "NVIDIA H200", "compute_capability": "9.0"}
    prof = shape_profiles(128, 64, (768, 1024), (1080, 1920))
    assert prof["sender"]["x"][2] == [1, 3, 1088, 1920]  # rounded up to the stride
    assert prof["receiver"]["y_hat"][2] == [1, 128, 68, 120]
    assert prof["fusion"]["x"][2][2] == 272  # one stripe and its halo
    base = engine_key("ab", gpu, "10.3.0", "fp16", prof["sender"])
    assert base == engine_key("ab", dict(gpu), "10.3.0", "fp16", prof["sender"])
    others = {
        engine_key("ac", gpu, "10.3.0", "fp16", prof["sender"]),
        engine_key("ab", {**gpu, "name": "Orin"}, "10.3.0", "fp16", prof["sender"]),
        engine_key("ab", gpu, "10.4.0", "fp16", prof["sender"]),
        engine_key("ab", gpu, "10.3.0", "fp32", prof["sender"]),
        engine_key("ab", gpu, "10.3.0", "fp16", prof["receiver"]),
    }
    assert base not in others and len(others) == 5


@needs_trt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_backend_matches_onnxruntime(tmp_path, monkeypatch, precision):
    """Build engines, run both backends on one image, and check the exactness claim."""
    pytest.importorskip("torch")
    from export.onnx import export_onnx
    from export.trt import build_engines
    from textboost import Pipeline
    from textboost.codec.image import load_image
    from textboost.codec.weights import DEFAULT_MODEL

    monkeypatch.setenv("TEXTBOOST_CACHE", str(tmp_path))
    out = tmp_path / "onnx"
    export_onnx(DEFAULT_MODEL, out, images=[REPO / "link_sim/data/kodak/kodim23.png"])
    build_engines(DEFAULT_MODEL, out, precisions=[precision], max_hw=(512, 768))
    ort = Pipeline.load(backend="onnxruntime", onnx_dir=out)
    trt = Pipeline.load(backend="tensorrt", onnx_dir=out, device="cuda")
    img = load_image(REPO / "link_sim/data/kodak/kodim23.png")
    x = np.ascontiguousarray(img.astype(np.float32).transpose(2, 0, 1)[None] / 255)
    (y_o, _), (y_t, _) = ort.codec.transforms.analysis(x), trt.codec.transforms.analysis(x)
    assert np.abs(y_o - y_t).max() < (1e-2 if precision == "fp32" else 0.5)
    for enc, dec in ((ort, trt), (trt, ort)):
        data = enc.encode(img, rate=0.5, text=False)
        assert np.array_equal(enc.codec.decode_latents(data)[1], dec.codec.decode_latents(data)[1])
        a, b = enc.decode(data), dec.decode(data)
        assert np.abs(a.astype(int) - b).mean() < (0.5 if precision == "fp32" else 2.0)
