"""Stage 2 of the word block: config, cache (real codec), resumable training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from textboost.fusion.regions import word_tiles
from textboost.fusion.word_inputs import tile_inputs
from textboost.text.words import Word, rect_quad
from textboost.train.stage2_words import (
    TileSample,
    WordStage2Config,
    WordTrainer,
    evaluate_heldout,
    load_samples,
    style_variants,
)
from textboost.train.word_cache import build_word_cache, cache_items, load_cached


def _samples(n: int = 3, seed: int = 0) -> list[TileSample]:
    """Tiles of a striped 'text' image and a blurred copy standing for the codec's output."""
    import cv2

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = np.full((96, 160, 3), 220, np.uint8)
        img[40:56, 30:130:6] = rng.integers(0, 60)  # dark strokes
        dec = cv2.GaussianBlur(img, (0, 0), 2.0)
        words = [Word(rect_quad(80, 48, 104, 18, 0.0), f"W{i}")]
        (tile,) = word_tiles(words, 160, 96)
        sl = (slice(tile.y0, tile.y1), slice(tile.x0, tile.x1))
        variants = tuple(
            tile_inputs(v, tile).astype(np.float16) for v in style_variants(img[sl], words, tile)
        )
        text = np.zeros(tile.shape, np.uint8)
        text[48 - 9 - tile.y0 : 48 + 9 - tile.y0, 28 - tile.x0 : 132 - tile.x0] = 1
        out.append(
            TileSample(
                f"s{i}", True, 0.03,
                np.ascontiguousarray(img[sl].transpose(2, 0, 1)),
                np.ascontiguousarray(dec[sl].transpose(2, 0, 1)),
                variants, text, np.flatnonzero(variants[0][-1] > 0),
            )
        )  # fmt: skip
    return out


def _cfg(out: Path, **kw) -> WordStage2Config:
    base = dict(out_dir=str(out), cache_dir=str(out / "cache"), channels=(8, 8), batch_size=2,
                crop=32, checkpoint_every=2, eval_every=2, seed=3, lr=1e-3)  # fmt: skip
    return WordStage2Config(**{**base, **kw})


def test_training_resumes_to_the_same_loss(tmp_path):
    """Four steps straight, and two steps, a new process-like trainer from the checkpoint,
    two more: the same losses, weights and optimizer state."""
    samples = _samples()
    straight = WordTrainer(_cfg(tmp_path / "a"), samples)
    losses_a = [straight.train_step()["loss"] for _ in range(4)]

    first = WordTrainer(_cfg(tmp_path / "b"), samples)
    losses_b = [first.train_step()["loss"] for _ in range(2)]
    first.save()
    torch.manual_seed(1234)  # another process's RNG: the checkpoint must restore it
    resumed = WordTrainer(_cfg(tmp_path / "b"), samples)
    assert resumed.step == 2
    losses_b += [resumed.train_step()["loss"] for _ in range(2)]
    assert losses_b == pytest.approx(losses_a, rel=1e-6, abs=1e-9)
    for a, b in zip(straight.block.parameters(), resumed.block.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-7)


def test_run_logs_evaluates_keeps_best_and_stops(tmp_path):
    samples = _samples()
    t = WordTrainer(_cfg(tmp_path), samples)
    t.run(steps=4, heldout=samples[:1], log=lambda m: None)
    assert t.step == 4
    for name in ("checkpoint.pt", "eval.csv", "log.csv", "status.json", "best.pt"):
        assert (tmp_path / name).exists(), name
    rows = (tmp_path / "eval.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) == 3  # steps 2 and 4
    t.run(minutes=0.0, log=lambda m: None)  # a wall-time stop ends after one step
    assert t.step == 5
    res = evaluate_heldout(t.block, samples)
    assert res["tiles"] == 3 and np.isfinite(res["text_gain_db"])


def test_config_refuses_evaluation_sets_and_bad_values(tmp_path):
    with pytest.raises(ValueError, match="evaluation set"):
        cache_items([REPO.parent / "shared/data/scenetext/openalpr_eu"], 0, 0)
    with pytest.raises(ValueError, match="rates"):
        _cfg(tmp_path, rates=[0.0])
    with pytest.raises(ValueError, match="crop"):
        _cfg(tmp_path, crop=30)


def test_too_few_training_faces_is_one_line_naming_folder_and_command(tmp_path):
    """matplotlib's DejaVu faces alone (what a machine without the font packages has) are
    far fewer than the shipped config expects: one line says where and what to run."""
    few = _cfg(tmp_path, font_dirs=["matplotlib", str(tmp_path / "none")], synth_images=1,
               min_fonts=100)  # fmt: skip
    line = few.font_warning()
    assert line is not None and "\n" not in line
    assert "matplotlib" in line and str(tmp_path / "none") in line
    assert "make training-fonts" in line and f"only {len(few.fonts())} " in line
    mpl = ["matplotlib"]
    assert _cfg(tmp_path, font_dirs=mpl, synth_images=1, min_fonts=1).font_warning() is None
    assert _cfg(tmp_path, font_dirs=mpl, min_fonts=100).font_warning() is None  # no synth
    script = (REPO / "scripts" / "install-training-fonts.sh").read_text()
    assert "apt-get install" in script and "fonts-liberation" in script


def test_shipped_words_config_loads():
    cfg = WordStage2Config.from_file(REPO / "configs" / "stage2_words.yaml")
    assert cfg.rates == (0.02, 0.03, 0.06) and cfg.block == "words"
    assert cfg.min_fonts > 100 and "/usr/share/fonts" in cfg.font_dirs
    assert not any("openalpr_eu" in d or "icdar" in d for d in cfg.real_dirs)


@pytest.mark.slow
def test_cache_of_one_real_image_round_trips(tmp_path):
    """The real codec and spotter on one small plate photo of the training split."""
    plates = REPO.parent / "shared" / "data" / "scenetext" / "openalpr_us"
    if not plates.is_dir():
        pytest.skip(f"{plates} not present")
    (item,) = cache_items([plates], 0, 0, max_per_set=1)
    info = build_word_cache(tmp_path, [item], (0.06,), max_side=1024, log=lambda m: None)
    assert info["made"] == 1 and info["complete"]
    c = load_cached(tmp_path / f"{item.name}.npz")
    assert c.size[0] == 1024 and len(c.gt) == 1 and len(c.sent) >= 1 and c.bpp[0] <= 0.06
    assert len(c.streams[0]) == int(c.bpp[0] * c.size[0] * c.size[1] / 8 + 0.5)
    for k, (x0, y0, x1, y1) in enumerate(c.tiles):
        assert c.originals[k].shape == (y1 - y0, x1 - x0, 3)
        assert c.decoded[0][k].shape == c.originals[k].shape
    assert build_word_cache(tmp_path, [item], (0.06,), 1024, log=lambda m: None)["made"] == 0
    samples = load_samples([tmp_path / f"{item.name}.npz"])
    assert len(samples) == len(c.tiles)


def test_augmentation_moves_picture_inputs_and_mask_together():
    from textboost.train.stage2_words import CropSampler

    s = _samples(1)[0]
    s.xt = s.x.copy()  # a perfect codec: x̃ must stay equal to x under every augmentation
    s.text = (s.variants[2][-1] > 0.5).astype(np.uint8)  # the mask follows the region
    sampler = CropSampler([s], np.random.default_rng(0), (0, 0, 1), augment=True)
    for _ in range(6):
        x, xt, inp, m = sampler.batch(4, 32)
        assert torch.equal(x, xt)
        assert torch.equal(m[:, 0] > 0, inp[:, -1] > 0.5)
        assert set(inp[:, 5].unique().tolist()) <= {-1.0, 0.0, 1.0}
        assert inp[:, 1:4].min() >= 0 and inp[:, 1:4].max() <= 1
        assert torch.equal(inp[:, 1:4] * (1 - inp[:, 4:5]), torch.zeros_like(inp[:, 1:4]))
