"""Shipped model files: safetensors with fp16 transforms, integer exact-path tables and CDFs.

A model file holds everything both ends need, so no float model or transcendental
function is evaluated at coding time: the integer SCCTX layers, the integer gain
anchors, the Gaussian CDF tables per scale index and the factorized-prior tables of z.
The model id is a hash of every tensor (see :meth:`TextBoostNet.weights_id`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from textboost.codec.coder import TableSet, quantize_pmf
from textboost.codec.exact import N_SCALES, scale_of_level

__all__ = [
    "DEFAULT_MODEL",
    "ModelFile",
    "export_model",
    "fusion_path",
    "gaussian_tables",
    "tensors_id",
]

ZOO = Path(__file__).resolve().parent.parent / "zoo"
DEFAULT_MODEL = ZOO / "tb-small-cpu3.safetensors"
FILE_FORMAT = "textboost-model/1"
TRANSFORM_PREFIXES = ("g_a.", "g_s.", "h_a.")
REQUIRED_TENSORS = {
    "gain_anchors_q6",
    "z_gain_anchors_q6",
    "y_pmf",
    "y_pmf_offsets",
    "z_pmf",
    "z_pmf_offsets",
}


def fusion_path(model_path: str | Path) -> Path:
    """Where the fusion block trained on a model file lives: ``<stem>.fusion.safetensors``
    beside it (no torch needed to find it)."""
    p = Path(model_path)
    return p.with_name(p.name.removesuffix(".safetensors") + ".fusion.safetensors")


def tensors_id(tensors: dict[str, np.ndarray]) -> bytes:
    """4-byte model id: SHA-256 over every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.digest()[:4]


def gaussian_tables(tail_sigmas: float = 6.0) -> TableSet:
    """One integer pmf per scale index: N(0, σ_i) ⊛ U(−½, ½) on −T..T, plus an escape."""
    from scipy.special import ndtr  # export-time only; the tables ship in the model file

    pmfs = []
    for i in range(N_SCALES):
        sigma = float(scale_of_level(i))
        t = int(np.ceil(tail_sigmas * sigma)) + 1
        s = np.arange(-t, t + 1, dtype=np.float64)
        p = ndtr((s + 0.5) / sigma) - ndtr((s - 0.5) / sigma)
        pmfs.append(quantize_pmf(np.append(p, 2 * ndtr(-(t + 0.5) / sigma))))
    return TableSet(pmfs)


def z_tables(pmf: np.ndarray) -> TableSet:
    """Per-channel integer pmfs of z from the factorized prior's (C, 2R+1) probabilities."""
    return TableSet([quantize_pmf(np.append(p, max(1.0 - p.sum(), 0.0))) for p in pmf])


@dataclass
class ModelFile:
    """A loaded model file: numpy arrays only (torch is needed just for the transforms)."""

    path: Path
    config_json: str
    tensors: dict[str, np.ndarray]
    model_id: bytes
    card: dict

    @classmethod
    def load(cls, path: str | Path | None = None) -> ModelFile:
        path = Path(path) if path is not None else DEFAULT_MODEL
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist")
        try:
            tensors = load_file(str(path))
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"{path}: not a readable safetensors model file ({e})") from e
        missing = sorted(REQUIRED_TENSORS - set(tensors))
        if missing:
            raise ValueError(f"{path}: model file lacks tensors {missing} (older format?)")
        if meta.get("format") != FILE_FORMAT:
            raise ValueError(
                f"{path}: metadata format {meta.get('format')!r}, expected {FILE_FORMAT!r}"
            )
        return cls(
            path=path,
            config_json=meta["config"],
            tensors=tensors,
            model_id=tensors_id(tensors),
            card=json.loads(meta.get("card", "{}")),
        )

    def y_tables(self) -> TableSet:
        return TableSet.from_flat(self.tensors["y_pmf"], self.tensors["y_pmf_offsets"])

    def z_tables(self) -> TableSet:
        return TableSet.from_flat(self.tensors["z_pmf"], self.tensors["z_pmf_offsets"])

    def exact_tables(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in self.tensors.items() if k.startswith("scctx.")}

    def transform_state(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in self.tensors.items() if k.startswith(TRANSFORM_PREFIXES)}


def export_model(net, path: str | Path, card: dict | None = None) -> bytes:
    """Freeze ``net`` (a TextBoostNet) and write its model file; returns the model id."""
    import torch

    net = net.eval()
    net.freeze()
    tensors: dict[str, np.ndarray] = {}
    for name, value in net.state_dict().items():
        if name.startswith(TRANSFORM_PREFIXES):
            tensors[name] = value.detach().to(torch.float16).cpu().numpy()
    for name, mod in net.qconvs():
        for k, v in mod.tables().items():
            tensors[f"{name}.{k}"] = v.cpu().numpy()
    for name in ("gain_anchors", "z_gain_anchors"):
        a = getattr(net, name).detach()
        tensors[f"{name}_q6"] = torch.floor(a * 64 + 0.5).to(torch.int32).numpy()
    tensors["y_pmf"], tensors["y_pmf_offsets"] = gaussian_tables().flat()
    zt = z_tables(net.z_prior.pmf_table(net.cfg.z_radius))
    tensors["z_pmf"], tensors["z_pmf_offsets"] = zt.flat()
    meta = {"format": FILE_FORMAT, "config": net.cfg.to_json(), "card": json.dumps(card or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return tensors_id(tensors)
