"""Stage-1 training: the loss falls on a fixed batch, and a resumed run continues exactly."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from tests.conftest import REPO, SHARED
from textboost.codec.model import TextBoostNet
from textboost.train.stage1 import TrainConfig, Trainer, rd_loss

TINY = {
    "N": 16, "M": 32, "z_channels": 16, "groups": [4, 4, 8, 16], "res_blocks": 1,
    "attention": False, "hs_channels": 16, "hs_mid_channels": 8, "ctx_channels": 8,
    "agg_channels": [8, 8, 8, 16],
}  # fmt: skip


@pytest.fixture
def data_dir(tmp_path):
    src = sorted((SHARED / "data" / "photos" / "bsds500").rglob("*.jpg"))[:3]
    d = tmp_path / "imgs"
    d.mkdir()
    for p in src:
        shutil.copy(p, d / p.name)
    return d


def _config(tmp_path, data_dir, steps: int) -> TrainConfig:
    return TrainConfig(
        out_dir=str(tmp_path / "run"), data_dirs=[str(data_dir)], model=TINY, steps=steps,
        batch_size=2, crop=64, threads=1, checkpoint_every=1000, seed=3,
    )  # fmt: skip


def test_loss_decreases_on_a_fixed_batch(tmp_path, data_dir):
    torch.manual_seed(0)
    trainer = Trainer(_config(tmp_path, data_dir, 100))
    net = trainer.net
    x = trainer.sampler.batch(2)
    rate = torch.tensor([0.2, 0.8])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def loss() -> torch.Tensor:
        return rd_loss(net(x, rate), x, net.cfg.lmbda(rate))["loss"]

    net.eval()  # deterministic rounding (no noise) for the comparison
    with torch.no_grad():
        before = loss().item()
    net.train()
    for _ in range(30):
        opt.zero_grad()
        loss().backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        after = loss().item()
    assert after < 0.9 * before


def test_resume_is_exact(tmp_path, data_dir):
    straight = Trainer(_config(tmp_path / "a", data_dir, 3))
    straight.run()
    first = Trainer(_config(tmp_path / "b", data_dir, 3))
    first.run(2)
    resumed = Trainer(_config(tmp_path / "b", data_dir, 3))
    assert resumed.step == 2
    resumed.run()
    for (n, p), (_, q) in zip(
        straight.net.state_dict().items(), resumed.net.state_dict().items(), strict=True
    ):
        assert torch.equal(p, q), n
    log = (tmp_path / "b" / "run" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,") and (tmp_path / "b" / "run" / "config.yaml").exists()


def test_kodak_is_refused(tmp_path):
    cfg = _config(tmp_path, SHARED / "data" / "kodak", 1)
    with pytest.raises(ValueError, match="Kodak is the test set"):
        Trainer(cfg)


def test_rate_power_must_be_positive(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("out_dir: x\ndata_dirs: [y]\nrate_power: 0\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: rate_power: expected a positive number"):
        TrainConfig.from_file(cfg)


def test_export_round_trip(tmp_path):
    from textboost.codec.api import Codec
    from textboost.codec.backends import make_transforms
    from textboost.codec.model import CodecConfig
    from textboost.codec.weights import ModelFile, export_model

    net = TextBoostNet(
        CodecConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in TINY.items()})
    )
    mid = export_model(net, tmp_path / "m.safetensors", {"note": "test"})
    model = ModelFile.load(tmp_path / "m.safetensors")
    assert model.model_id == mid and model.card["note"] == "test"
    codec = Codec(model, make_transforms(model))
    img = np.random.default_rng(0).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    assert codec.decode(codec.encode(img, rate=0.5)).shape == img.shape


def test_warm_start_reproduces_a_model_file(tmp_path, data_dir):
    """A run started from a model file re-exports the same integer tables and transforms."""
    from textboost.codec.weights import ModelFile, export_model

    src = Trainer(_config(tmp_path / "src", data_dir, 2))
    src.run()
    export_model(src.net, tmp_path / "src.safetensors")
    cfg = _config(tmp_path / "warm", data_dir, 2)
    cfg.init_from = str(tmp_path / "src.safetensors")
    cfg.model = {**TINY, "lambda_min": 5e-5}  # a new λ range is allowed
    warm = Trainer(cfg)
    assert warm.step == 0 and warm.net.cfg.lambda_min == 5e-5
    export_model(warm.net, tmp_path / "warm.safetensors")
    a = ModelFile.load(tmp_path / "src.safetensors").tensors
    b = ModelFile.load(tmp_path / "warm.safetensors").tensors
    assert a.keys() == b.keys()
    for name in a:
        if name == "z_pmf":  # refitted from its tables: close, not identical
            pa, pb = a[name] / 2**24, b[name] / 2**24
            assert np.abs(pa - pb).max() < 0.02, name
        else:
            assert np.array_equal(a[name], b[name]), name
    warm.run()  # and it trains on
    assert warm.step == 2


def test_warm_start_refuses_other_sizes(tmp_path, data_dir):
    from textboost.codec.weights import export_model

    src = Trainer(_config(tmp_path / "src", data_dir, 1))
    export_model(src.net, tmp_path / "src.safetensors")
    cfg = _config(tmp_path / "other", data_dir, 1)
    cfg.init_from = str(tmp_path / "src.safetensors")
    cfg.model = {**TINY, "ctx_channels": 16}
    with pytest.raises(ValueError, match="ctx_channels"):
        Trainer(cfg)


def test_pack_fits_the_cap_and_refuses_what_cannot(tmp_path, data_dir):
    from PIL import Image

    from textboost.train.pack import pack_images

    info = pack_images([data_dir], tmp_path / "out", max_mib=1.0, max_side=200)
    files = sorted((tmp_path / "out" / data_dir.name).glob("*.jpg"))
    assert info["images"] == len(files) == 3
    assert sum(f.stat().st_size for f in files) <= 2**20
    assert all(min(Image.open(f).size) <= 200 for f in files)
    with pytest.raises(ValueError, match="over --max-mib"):
        pack_images([data_dir], tmp_path / "tiny", max_mib=0.001)


STAGE1_CONFIGS = sorted(  # field.yaml is the field services' config (docs/field.md)
    p for p in (REPO / "configs").glob("*.yaml") if "stage2" not in p.name and "field" not in p.name
)


@pytest.mark.parametrize("path", STAGE1_CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load_and_fit_their_start_model(path):
    from textboost.codec.model import CodecConfig
    from textboost.codec.weights import ModelFile
    from textboost.train.stage1 import _tuples
    from textboost.train.warm_start import check_sizes

    cfg = TrainConfig.from_file(path)
    codec = CodecConfig(**_tuples(cfg.model))
    assert 0 < cfg.lr_drop_at <= 1 and 0 < codec.lambda_min < codec.lambda_max
    start = REPO / cfg.init_from if cfg.init_from else None
    if start is not None and start.is_file():  # a parent that left the tree is named in a comment
        check_sizes(codec, ModelFile.load(start))


def test_default_size_model_file_fits_the_shipping_cap(tmp_path):
    """The GPU model (CodecConfig() sizes) must ship in fp16 within 25 MB and load back."""
    from textboost.codec.model import CodecConfig
    from textboost.codec.weights import ModelFile, export_model

    torch.manual_seed(0)
    path = tmp_path / "default.safetensors"
    mid = export_model(TextBoostNet(CodecConfig()), path)
    assert path.stat().st_size <= 25_000_000
    assert ModelFile.load(path).model_id == mid
