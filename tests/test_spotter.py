"""The PP-OCRv4 adapter: its own pipeline around the wheel's models."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SHARED
from textboost.text.words import Word, reading_order

ICDAR = SHARED / "data" / "scenetext" / "icdar2015_mmocr_toy"


@pytest.mark.skipif(not ICDAR.is_dir(), reason="../shared scene-text set absent")
def test_the_adapter_gives_the_wheels_own_words():
    """The adapter's stages (table-normalised detection, no spinning threads) return what
    the wheel's own call returns, quads to the last bit."""
    from textboost.codec.image import load_image
    from textboost.text.spotter import RapidOcrSpotter

    img = load_image(ICDAR / "img_1.jpg")
    spotter = RapidOcrSpotter()
    result, _ = spotter._engine(np.ascontiguousarray(img[:, :, ::-1]), use_cls=False)
    want = [
        Word(reading_order(np.asarray(b, dtype=np.float64), len(t)), str(t), float(s))
        for b, t, s in result
        if str(t).strip()
    ]
    got = spotter.spot(img)
    assert [(w.text, w.score) for w in got] == [(w.text, w.score) for w in want]
    assert all(np.array_equal(a.quad, b.quad) for a, b in zip(got, want, strict=True))
    assert "carpark" in {w.text.lower() for w in got}


def test_bad_settings_are_refused():
    from textboost.text.spotter import RapidOcrSpotter

    with pytest.raises(ValueError, match="det_max_side"):
        RapidOcrSpotter(det_max_side=10)
