"""Fusion block: identity until trained, gradients only into it, weights file, stage-2 runs."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from textboost.codec.weights import fusion_path
from textboost.fusion import stripes
from textboost.fusion.model import FusionBlock
from textboost.fusion.runtime import apply_fusion, fusion_metadata, load_fusion, save_fusion
from textboost.train.stage2 import (
    Stage2Config,
    Stage2Trainer,
    evaluate,
    fusion_loss,
    psnr_gains,
)


def _trained_like(seed: int = 0) -> FusionBlock:
    """A block with every weight non-zero, as after training."""
    torch.manual_seed(seed)
    block = FusionBlock()
    torch.nn.init.normal_(block.project.weight, std=0.1)
    return block


def test_untrained_block_is_the_identity():
    block = FusionBlock()
    x, g = torch.rand(2, 3, 20, 24), torch.rand(2, 1, 20, 24)
    assert torch.equal(block(x, g), x)
    dec = (np.random.default_rng(0).random((17, 23, 3)) * 255).astype(np.uint8)
    assert np.array_equal(apply_fusion(block, dec, None), dec)


def test_shapes_and_guidance_channels():
    block = _trained_like()
    x = torch.rand(1, 3, 16, 16)
    g1 = torch.rand(1, 1, 16, 16)
    assert block(x, g1).shape == (1, 3, 16, 16)
    assert torch.allclose(block(x, g1), block(x, g1.expand(1, 3, 16, 16)))
    with pytest.raises(ValueError, match="guidance"):
        block(x, torch.rand(1, 2, 16, 16))
    with pytest.raises(ValueError, match="guidance"):
        block(x, torch.rand(1, 1, 8, 16))
    with pytest.raises(ValueError, match="decoded"):
        block(torch.rand(1, 4, 16, 16), g1)


def test_gradients_reach_only_the_block():
    """The codec is frozen: a stand-in synthesis layer gets no gradient, every block weight does."""
    decoder = torch.nn.Conv2d(8, 3, 3, padding=1).requires_grad_(False)
    block = _trained_like()
    y = torch.randn(2, 8, 24, 24)
    x = torch.rand(2, 3, 24, 24)
    m = (torch.rand(2, 1, 24, 24) > 0.7).float()
    x_tilde = decoder(y).sigmoid()
    fusion_loss(block(x_tilde, m), x, m, alpha=10.0)["loss"].backward()
    assert all(p.grad is None for p in decoder.parameters())
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_zero_init_block_learns():
    """From the identity, the projection gets a gradient first, then everything else."""
    block = FusionBlock()
    x, xt = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    m = torch.ones(1, 1, 16, 16)
    fusion_loss(block(xt, m), x, m, 10.0)["loss"].backward()
    assert block.project.weight.grad.abs().sum() > 0


def test_weights_file_round_trip(tmp_path):
    block = _trained_like(1)
    path = tmp_path / "m.fusion.safetensors"
    save_fusion(block, path, b"\x01\x02\x03\x04", {"steps": 7})
    meta = fusion_metadata(path)
    assert meta["model_id"] == "01020304" and meta["card"] == {"steps": 7}
    loaded = load_fusion(path, model_id=b"\x01\x02\x03\x04")
    x, g = torch.rand(1, 3, 12, 12), torch.rand(1, 1, 12, 12)
    assert torch.equal(loaded(x, g), block.eval()(x, g))
    with pytest.raises(ValueError, match="trained on codec 01020304"):
        load_fusion(path, model_id=b"\xff\xff\xff\xff")
    with pytest.raises(FileNotFoundError):
        load_fusion(tmp_path / "missing.safetensors")
    assert fusion_path("zoo/tb-small-cpu3.safetensors").name == "tb-small-cpu3.fusion.safetensors"


def test_stripes_match_one_pass(monkeypatch):
    block = _trained_like(2).eval()
    rng = np.random.default_rng(1)
    dec = (rng.random((70, 41, 3)) * 255).astype(np.uint8)
    g = (rng.random((70, 41)) > 0.8).astype(np.float32)
    whole = apply_fusion(block, dec, g)
    monkeypatch.setattr(stripes, "STRIPE_ROWS", 16)
    assert np.array_equal(apply_fusion(block, dec, g), whole)
    assert not np.array_equal(whole, dec)  # the block did something
    with pytest.raises(ValueError, match="guidance"):
        apply_fusion(block, dec, g[:10])


# -- stage 2 ------------------------------------------------------------------------------


def _tiny_cache(d, n: int = 2) -> list[str]:
    rng = np.random.default_rng(0)
    names: list[str] = []
    k = 0
    while len(names) < n:  # names that are not held out with heldout_mod=10
        name = f"synth0_{k:05d}"
        k += 1
        if zlib.crc32(name.encode()) % 10 == 0:
            continue
        x = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
        noise = rng.integers(-20, 21, x.shape)
        dec = np.clip(x.astype(int) + noise, 0, 255).astype(np.uint8)
        g = np.zeros((48, 64), np.uint8)
        g[10:20, 10:40] = 255
        m = (g > 0).astype(np.uint8)
        np.savez(
            d / f"{name}_r0.npz", original=x, decoded=dec, guidance=g, mask=m,
            bpp=np.float32(0.03), source=np.array("synth:test"),
        )  # fmt: skip
        names.append(name)
    return names


def _config(tmp_path, steps: int) -> Stage2Config:
    cache = tmp_path / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    return Stage2Config(
        out_dir=str(tmp_path / "run"), cache_dir=str(cache), steps=steps, batch_size=2,
        crop=(24, 32), threads=1, checkpoint_every=2, seed=4,
    )  # fmt: skip


def test_stage2_checkpoints_and_resumes_exactly(tmp_path):
    cfg = _config(tmp_path, 4)
    _tiny_cache(tmp_path / "cache")
    t = Stage2Trainer(cfg)
    t.run(steps=2)
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    t2 = Stage2Trainer(cfg)
    assert t2.step == 2
    t2.run()
    assert t2.step == 4
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,") and log[-1].startswith("4,")

    straight = _config(tmp_path / "b", 4)
    _tiny_cache(tmp_path / "b" / "cache")
    t3 = Stage2Trainer(straight)
    t3.run()
    for a, b in zip(t2.block.state_dict().values(), t3.block.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)

    res = evaluate(t2.block.eval(), sorted((tmp_path / "cache").glob("*.npz")), progress=False)
    s = res["summary"]["all"]
    assert s["images"] == 2 and s["decoded_text"] is not None


def test_psnr_gains_are_positive_when_the_block_helps():
    x = torch.rand(2, 3, 8, 8)
    x_tilde = x + 0.1
    m = torch.zeros(2, 1, 8, 8)
    m[:, :, 2:4] = 1
    closer = x + 0.05  # half the error: +6.02 dB
    g = psnr_gains(x, x_tilde, closer, m)
    assert g["gain"] == pytest.approx(6.0206, abs=1e-3)
    assert g["text_gain"] == pytest.approx(6.0206, abs=1e-3)
    assert psnr_gains(x, x_tilde, x_tilde, m) == {"gain": 0.0, "text_gain": 0.0}
    assert psnr_gains(x, x_tilde, closer, torch.zeros_like(m))["text_gain"] == 0.0


def test_shipped_stage2_configs_load():
    from tests.conftest import REPO

    paths = sorted((REPO / "configs").glob("stage2*.yaml"))
    paths = [p for p in paths if "block: words" not in p.read_text()]  # test_stage2_words
    assert paths
    for p in paths:
        cfg = Stage2Config.from_file(p)
        assert cfg.bpp_range == (0.01, 0.06) and cfg.alpha == 10.0


def test_config_refuses_evaluation_sets(tmp_path):
    with pytest.raises(ValueError, match="evaluation set"):
        Stage2Config(
            out_dir="x", cache_dir="y", plate_dirs=["../shared/data/scenetext/openalpr_eu"]
        )
    with pytest.raises(ValueError, match="evaluation set"):
        Stage2Config(out_dir="x", cache_dir="y", photo_dirs=["../shared/data/kodak"])


@pytest.mark.parametrize("name", ["fusion", "paper-fusion"])
def test_shipped_weights_fit_the_shipped_codec(name):
    """The shipped block (either kind) and the paper's block kept beside it as the ablation
    load for the shipped codec, were trained, and run on the receiver's call."""
    from textboost.codec.weights import DEFAULT_MODEL, ModelFile
    from textboost.fusion.runtime import fuse
    from textboost.text.words import Word, rect_quad

    path = fusion_path(DEFAULT_MODEL).with_name(f"tb-small-cpu3.{name}.safetensors")
    block = load_fusion(path, model_id=ModelFile.load(DEFAULT_MODEL).model_id)
    meta = fusion_metadata(path)
    assert meta["card"]["steps"] > 0
    if name == "paper-fusion":
        assert meta["format"] == "textboost-fusion/1"
    dec = np.full((40, 64, 3), 128, np.uint8)
    assert fuse(block, dec, [Word(rect_quad(32, 20, 30, 10, 0.0), "A1")]).shape == dec.shape
