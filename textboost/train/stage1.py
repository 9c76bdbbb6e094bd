"""Stage 1 of the paper (§4.3, §5.1.4): rate–distortion training of the whole backbone.

loss = bpp + λ(r)·255²·MSE with a random rate r ∈ [0, 1] per crop, so one set of weights
learns the whole rate range; the exact-path quantisation is in the loop (QConv2d).
Checkpoints hold model, optimizer, step and every RNG state, so a run resumes exactly;
``weights.pt`` beside it holds the same without the optimizer (a quarter of the size),
small enough to carry between machines, and a run resumes from it with a fresh Adam.
A new run may start from a shipped model file (``init_from``, see ``warm_start.py``).
On CUDA the float transforms may run in bf16 (``amp``); the exact layers stay in fp32
with TF32 off, since their integer inputs reach 2^15 and TF32 keeps 10 mantissa bits.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from textboost.codec.model import CodecConfig, TextBoostNet
from textboost.codec.weights import ModelFile
from textboost.settings.load import load
from textboost.train import run_state
from textboost.train.data import CropSampler, list_images
from textboost.train.warm_start import load_model_file

__all__ = ["TrainConfig", "Trainer", "rd_loss"]


@dataclass
class TrainConfig:
    out_dir: str
    data_dirs: list[str]
    model: dict = field(default_factory=dict)  # CodecConfig fields
    steps: int = 100_000
    batch_size: int = 8
    crop: int = 256
    lr: float = 1e-4
    lr_drop_at: float = 0.9  # fraction of steps after which lr is divided by 10
    clip_grad: float = 1.0
    seed: int = 0
    threads: int = 0  # torch threads; 0 = torch default
    device: str = "cpu"
    amp: bool = False  # bf16 autocast of g_a, h_a and g_s (CUDA)
    checkpoint_every: int = 500
    init_from: str | None = None  # model file to start from when out_dir has no checkpoint
    # rate = u ** rate_power, u uniform: > 1 spends more steps at the low end of the range,
    # where the product operates (0.01–0.1 bpp), while still visiting the top anchor.
    rate_power: float = 1.0

    def __post_init__(self) -> None:
        if not self.rate_power > 0:
            raise ValueError(f"rate_power: expected a positive number, got {self.rate_power!r}")

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Raises: ConfigError (a ValueError), one line naming the file and the setting."""
        return load(path, cls, "training settings")


def rd_loss(
    out: dict[str, torch.Tensor], x: torch.Tensor, lmbda: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Per-batch rate (bits per pixel), MSE and the λ-weighted loss (CompressAI convention)."""
    _b, _, h, w = x.shape
    bits = -(
        out["y_likelihoods"].log2().flatten(1).sum(1)
        + out["z_likelihoods"].log2().flatten(1).sum(1)
    )
    bpp = bits / (h * w)
    mse = ((out["x_hat"] - x) ** 2).flatten(1).mean(1)
    loss = (bpp + lmbda * 255**2 * mse).mean()
    return {"loss": loss, "bpp": bpp.mean(), "mse": mse.mean()}


class Trainer:
    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.out = run_state.open_run(cfg.out_dir, cfg.threads, cfg.seed)
        self.device = torch.device(cfg.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.benchmark = True
        self.net = TextBoostNet(CodecConfig(**_tuples(cfg.model))).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.rng = np.random.default_rng(cfg.seed)
        self.sampler = CropSampler(
            list_images(cfg.data_dirs), cfg.crop, self.rng, device=self.device
        )
        self.step = 0
        self.ckpt = self.out / "checkpoint.pt"
        self.weights = self.out / "weights.pt"
        if self.ckpt.exists():
            self._load(self.ckpt)
        elif self.weights.exists():
            self._load(self.weights)
        elif cfg.init_from:
            load_model_file(self.net, ModelFile.load(cfg.init_from))
        run_state.write_settings(self.out, cfg)

    def _load(self, path: Path) -> None:
        state = run_state.load_checkpoint(path)
        self.net.load_state_dict(state["model"])
        if "optimizer" in state:
            self.opt.load_state_dict(state["optimizer"])
        self.step = state["step"]
        run_state.restore_rngs(state, self.rng)

    def save(self) -> None:
        state = {
            "model": self.net.state_dict(),
            "step": self.step,
            **run_state.rng_states(self.rng),
            "model_config": self.net.cfg.to_json(),
        }
        run_state.save_checkpoint(state, self.weights)
        run_state.save_checkpoint({**state, "optimizer": self.opt.state_dict()}, self.ckpt)

    def _lr(self) -> float:
        return self.cfg.lr * (0.1 if self.step >= self.cfg.lr_drop_at * self.cfg.steps else 1.0)

    def train_step(self) -> dict[str, torch.Tensor]:
        """One optimiser step; metrics stay on the device (no sync) until logged."""
        self.net.train()
        x = self.sampler.batch(self.cfg.batch_size)
        r = self.rng.random(self.cfg.batch_size) ** self.cfg.rate_power
        rate = torch.from_numpy(r.astype(np.float32)).to(self.device)
        for g in self.opt.param_groups:
            g["lr"] = self._lr()
        out = self.net(x, rate, amp=self.cfg.amp)
        terms = rd_loss(out, x, self.net.cfg.lmbda(rate))
        self.opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.clip_grad)
        self.opt.step()
        self.step += 1
        return {k: terms[k].detach() for k in ("loss", "bpp", "mse")}

    def run(self, steps: int | None = None, minutes: float | None = None) -> None:
        """Train to the configured total, or ``steps`` more, or for ``minutes`` of wall time."""
        end = self.cfg.steps if steps is None else min(self.cfg.steps, self.step + steps)
        deadline = None if minutes is None else time.monotonic() + 60 * minutes
        header = ["step", "time", "loss", "bpp", "psnr", "lr"]
        with (
            run_state.csv_log(self.out / "log.csv", header) as log_row,
            tqdm(total=end, initial=self.step, desc="stage1", dynamic_ncols=True) as bar,
        ):
            acc: list[dict[str, torch.Tensor]] = []
            while self.step < end:
                m = self.train_step()
                acc.append(m)
                bar.update(1)
                if self.step % 50 == 0 or self.step == end:
                    avg = {k: torch.stack([a[k] for a in acc]).mean().item() for k in m}
                    avg["psnr"] = float(
                        np.mean([10 * math.log10(1 / max(a["mse"].item(), 1e-10)) for a in acc])
                    )
                    acc.clear()
                    bar.set_postfix(
                        loss=f"{avg['loss']:.3f}",
                        bpp=f"{avg['bpp']:.3f}",
                        psnr=f"{avg['psnr']:.2f}",
                    )
                    log_row(
                        [
                            self.step,
                            f"{time.time():.0f}",
                            *(f"{avg[k]:.5f}" for k in ("loss", "bpp", "psnr")),
                            self._lr(),
                        ]
                    )
                if deadline is not None and time.monotonic() > deadline:
                    end = self.step
                if self.step % self.cfg.checkpoint_every == 0 or self.step == end:
                    self.save()
        run_state.write_status(self.out, {"step": self.step})


def _tuples(model: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in model.items()}
