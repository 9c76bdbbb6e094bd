"""Backends for the one-sided float transforms (g_a, h_a at the sender; g_s at the receiver).

Only these may differ between devices: nothing they compute drives the entropy coder.
``torch`` is the reference backend; ONNX Runtime and TensorRT backends come with export.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from textboost.codec.weights import ModelFile

__all__ = ["TorchTransforms", "Transforms", "load_torch_net", "make_transforms"]


class Transforms(Protocol):
    def analysis(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (B, 3, H, W) float32 in [0, 1] → y (B, H/16, W/16, M), z (B, H/64, W/64, Cz)."""
        ...

    def synthesis(self, y_hat: np.ndarray) -> np.ndarray:
        """ŷ (B, h, w, M) float32 → x̂ (B, 3, 16h, 16w) float32 (unclipped)."""
        ...


def load_torch_net(model: ModelFile):
    """A TextBoostNet with the file's transforms and its frozen exact tables (reference)."""
    import torch

    from textboost.codec.model import CodecConfig, TextBoostNet

    net = TextBoostNet(CodecConfig.from_json(model.config_json))
    state = {k: torch.from_numpy(v.astype(np.float32)) for k, v in model.transform_state().items()}
    missing = set(k for k in net.state_dict() if k.startswith(("g_a.", "g_s.", "h_a."))) - set(
        state
    )
    if missing:
        raise ValueError(f"{model.path}: transform weights missing: {sorted(missing)[:3]}...")
    net.load_state_dict(state, strict=False)
    tables = model.exact_tables()
    for name, mod in net.qconvs():
        mod.w_int = torch.from_numpy(tables[f"{name}.w"].astype(np.float32))
        mod.b_int = torch.from_numpy(tables[f"{name}.b"].astype(np.float32))
        mod.mult = torch.from_numpy(tables[f"{name}.mult"].astype(np.float64))
        mod.shift = torch.from_numpy(tables[f"{name}.shift"].astype(np.float64))
    return net.eval()


class TorchTransforms:
    def __init__(self, model: ModelFile, device: str = "cpu") -> None:
        import torch

        self._torch = torch
        self.device = torch.device(device)
        self.net = load_torch_net(model).to(self.device)

    def analysis(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            y = self.net.g_a(torch.from_numpy(x).to(self.device))
            z = self.net.h_a(y)
        return (
            y.permute(0, 2, 3, 1).cpu().numpy().astype(np.float64),
            z.permute(0, 2, 3, 1).cpu().numpy().astype(np.float64),
        )

    def synthesis(self, y_hat: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            t = torch.from_numpy(
                np.ascontiguousarray(y_hat.transpose(0, 3, 1, 2), dtype=np.float32)
            )
            return self.net.g_s(t.to(self.device)).cpu().numpy()


def make_transforms(model: ModelFile, backend: str = "torch", device: str = "cpu") -> Transforms:
    if backend == "torch":
        return TorchTransforms(model, device)
    raise ValueError(f"backend {backend!r} not available; expected one of: torch")
