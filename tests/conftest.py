"""Shared fixtures: the shipped codec and small real images from ../shared (Kodak).

Edge tests (``pytest.mark.edge``) also run on a torch-free Python 3.10 (``.ci/run``): there
``codec`` and ``onnx_dir`` use the graphs in ``$TEXTBOOST_TEST_ONNX_DIR`` (exported once by
an interpreter with torch) on ONNX Runtime, and whatever needs torch itself skips."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

# headless Chromium, once for the whole session (a second Playwright in one process fails)
from tests.browser import browser, browser_page  # noqa: F401 - pytest fixtures

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
KODAK = SHARED / "data" / "kodak"
TORCH = importlib.util.find_spec("torch") is not None
ONNX_ENV = "TEXTBOOST_TEST_ONNX_DIR"
needs_torch = pytest.mark.skipif(not TORCH, reason="torch is not installed (the edge run)")


@pytest.fixture(scope="session", autouse=True)
def _user_cache(tmp_path_factory):
    """Tests (and the CLIs they start) never write into the user's ~/.cache/textboost:
    exported graphs, engines and the simulator's default encode cache go to a session
    folder (``textboost.user_cache.cache_root`` reads TEXTBOOST_CACHE first)."""
    old = os.environ.get("TEXTBOOST_CACHE")
    os.environ["TEXTBOOST_CACHE"] = str(tmp_path_factory.mktemp("user_cache"))
    yield
    if old is None:
        del os.environ["TEXTBOOST_CACHE"]
    else:
        os.environ["TEXTBOOST_CACHE"] = old


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory) -> Path:
    """The shipped model's ONNX graphs: ``$TEXTBOOST_TEST_ONNX_DIR`` if set, else exported
    here with torch (parity on one small crop), else the test skips."""
    if env := os.environ.get(ONNX_ENV):
        return Path(env)
    if not TORCH:
        pytest.skip(f"no torch to export the graphs and {ONNX_ENV} is not set")
    from PIL import Image

    from export.onnx import export_onnx
    from textboost.codec.image import load_image

    root = tmp_path_factory.mktemp("onnx")
    crop = root / "crop.png"
    Image.fromarray(load_image(KODAK / "kodim23.png")[200:296, 300:460]).save(crop)
    export_onnx(None, root / "onnx", images=[crop])
    return root / "onnx"


@pytest.fixture(scope="session")
def pipeline(request):
    """The shipped model with its fusion block on torch (the reference), or on ONNX Runtime
    where torch is absent: both write the same streams (results/cross_backend_cpu.json)."""
    from textboost import Pipeline

    if TORCH:
        return Pipeline.load()
    return Pipeline.load(backend="onnxruntime", onnx_dir=request.getfixturevalue("onnx_dir"))


@pytest.fixture(scope="session")
def codec(pipeline):
    """The shipped codec alone (the pipeline's)."""
    return pipeline.codec


@pytest.fixture(scope="session")
def kodim23() -> np.ndarray:
    from textboost.codec.image import load_image

    return load_image(KODAK / "kodim23.png")


@pytest.fixture(scope="session")
def small_image(kodim23) -> np.ndarray:
    """A 150×100 crop (not a multiple of the stride) with real texture."""
    return kodim23[200:300, 300:450].copy()
