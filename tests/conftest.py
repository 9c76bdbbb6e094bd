"""Shared fixtures: the shipped codec and small real images from ../shared (Kodak)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
KODAK = SHARED / "data" / "kodak"


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
