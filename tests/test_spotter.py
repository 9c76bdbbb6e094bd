"""The PP-OCRv4 adapter: its own pipeline around the wheel's models."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SHARED
from textboost.text.words import Word, reading_order

ICDAR = SHARED / "data" / "scenetext" / "icdar2015_mmocr_toy"


@pytest.mark.skipif(not ICDAR.is_dir(), reason="../shared scene-text set absent")
def test_wheel_batching_gives_the_wheels_own_words():
    """With the wheel's batching the adapter returns what the wheel's own call returns,
    quads to the last bit; its own widths read the same sign."""
    from textboost.codec.image import load_image
    from textboost.text.spotter import RapidOcrSpotter

    img = load_image(ICDAR / "img_1.jpg")
    spotter = RapidOcrSpotter(rec_batching="wheel")
    result, _ = spotter._engine(np.ascontiguousarray(img[:, :, ::-1]), use_cls=False)
    want = [
        Word(reading_order(np.asarray(b, dtype=np.float64), len(t)), str(t), float(s))
        for b, t, s in result
        if str(t).strip()
    ]
    got = spotter.spot(img)
    assert [(w.text, w.score) for w in got] == [(w.text, w.score) for w in want]
    assert all(np.array_equal(a.quad, b.quad) for a, b in zip(got, want, strict=True))
    own = RapidOcrSpotter().spot(img)
    assert "carpark" in {w.text.lower() for w in own}
    assert len(own) >= len(got) - 2


def test_bad_settings_are_refused():
    from textboost.text.spotter import RapidOcrSpotter

    with pytest.raises(ValueError, match="rec_batching"):
        RapidOcrSpotter(rec_batching="fast")
    with pytest.raises(ValueError, match="det_max_side"):
        RapidOcrSpotter(det_max_side=10)
