"""Shared fixtures: the shipped codec and small real images from ../shared (Kodak)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# headless Chromium, once for the whole session (a second Playwright in one process fails)
from tests.browser import browser, browser_page  # noqa: F401 - pytest fixtures

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
KODAK = SHARED / "data" / "kodak"


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
def codec():
    from textboost import Codec

    return Codec.load()


@pytest.fixture(scope="session")
def kodim23() -> np.ndarray:
    from textboost.codec.image import load_image

    return load_image(KODAK / "kodim23.png")


@pytest.fixture(scope="session")
def small_image(kodim23) -> np.ndarray:
    """A 150×100 crop (not a multiple of the stride) with real texture."""
    return kodim23[200:300, 300:450].copy()
