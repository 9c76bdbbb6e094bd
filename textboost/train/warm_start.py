"""Start a training run from a shipped model file instead of from scratch.

A model file keeps what the coder needs, not the float training state: transforms in
fp16, the exact layers as int8 weights with a fixed-point requantisation, gains in 1/64,
and z as integer pmf tables. Each is turned back into the float parameter that
quantises to it (so the start is the shipped model, up to fp16), and the factorized
prior of z, which the file holds only as tables, is fitted to those tables. That lets a
run continue a shipped model on a new λ range or more data without its checkpoint.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from textboost.codec.model import CodecConfig, TextBoostNet
from textboost.codec.weights import ModelFile

__all__ = ["check_sizes", "load_model_file"]


def check_sizes(cfg: CodecConfig, model: ModelFile) -> None:
    """Refuse a model file whose network sizes differ from ``cfg`` (the λ range may differ)."""
    shipped = json.loads(model.config_json)
    mine = json.loads(cfg.to_json())
    skip = {"lambda_min", "lambda_max", "extra"}
    diff = {k for k in mine if k not in skip and mine[k] != shipped.get(k)}
    if diff:
        raise ValueError(
            f"{model.path}: network sizes differ from the training config in {sorted(diff)}"
        )


def load_model_file(net: TextBoostNet, model: ModelFile, prior_steps: int = 300) -> None:
    """Copy ``model`` into ``net`` in place. Sizes must match; λ range may differ."""
    check_sizes(net.cfg, model)
    t = model.tensors
    state = net.state_dict()
    with torch.no_grad():
        for name, value in model.transform_state().items():
            state[name].copy_(torch.from_numpy(value.astype(np.float32)))
        for name, mod in net.qconvs():
            mult = torch.from_numpy(t[f"{name}.mult"].astype(np.float64))
            shift = torch.from_numpy(t[f"{name}.shift"].astype(np.float64))
            acc_scale = mult / torch.exp2(shift) * mod.out_scale
            s_w = acc_scale / mod.in_scale
            w = torch.from_numpy(t[f"{name}.w"].astype(np.float64)) * s_w[:, None, None, None]
            b = torch.from_numpy(t[f"{name}.b"].astype(np.float64)) * acc_scale
            mod.weight.copy_(w.float())
            mod.bias.copy_(b.float())
        for name in ("gain_anchors", "z_gain_anchors"):
            getattr(net, name).copy_(torch.from_numpy(t[f"{name}_q6"] / 64.0).float())
    _fit_z_prior(net, model, prior_steps)


def _fit_z_prior(net: TextBoostNet, model: ModelFile, steps: int) -> None:
    """Fit the factorized prior to the shipped z pmfs (cross-entropy over −R..R)."""
    tables = model.z_tables()
    r = net.cfg.z_radius
    target = torch.tensor(
        np.stack([p[:-1] / p.sum() for p in tables.pmfs]), dtype=torch.float32
    )  # (C, 2R+1), the escape bin dropped
    prior = net.z_prior
    dev = prior.matrices[0].device
    target = target.to(dev)
    opt = torch.optim.Adam(prior.parameters(), lr=1e-2)
    v = torch.arange(-r, r + 1, dtype=torch.float32, device=dev).view(1, -1, 1, 1)
    v = v.expand(1, -1, target.shape[0], 1).permute(0, 2, 1, 3)  # (1, C, 2R+1, 1)
    for _ in range(steps):
        p = prior.likelihood(v)[0, :, :, 0]
        loss = -(target * p.log2()).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
