"""The project's codec as an entrant: shipped weights, real `.tbx` bytes within each budget."""

from __future__ import annotations

import numpy as np
from PIL import Image

from textboost.eval.rd import evaluate_image


def test_ours_points_are_real_container_bytes_within_budget(tmp_path):
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:176, 0:176]
    base = np.stack([xx * 1.4, yy * 1.4, 128 + 60 * np.sin(xx / 9.0)], axis=-1)
    crop = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
    path = tmp_path / "crop.png"
    Image.fromarray(crop).save(path)
    res = evaluate_image(path, "ours", [0.001, 2.0], ())
    tiny, big = res["points"]
    assert not tiny["fit"] and "below the smallest stream" in tiny["reason"]
    assert big["fit"] and big["bytes"] <= big["budget_bytes"] == int(2.0 * 176 * 176 / 8)
    assert big["psnr_db"] > 15 and 0 < big["ms_ssim"] <= 1
    assert len(res["settings"]["model_id"]) == 8
