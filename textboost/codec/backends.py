"""Backends for the one-sided float transforms (g_a, h_a at the sender; g_s at the receiver).

Only these may differ between devices: nothing they compute drives the entropy coder.
``torch`` is the reference backend; ``onnxruntime`` and ``tensorrt`` run the graphs that
``python -m export onnx`` / ``python -m export trt`` write (``textboost.codec.exported``).
Only the torch backend imports torch, and only when it is chosen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from textboost.codec.exported import (
    BackendUnavailable,
    ExportError,
    FusionGraph,
    default_onnx_dir,
    export_command,
    fusion_kind,
    ort_providers,
    ort_session,
    read_export,
    sha256_file,
)
from textboost.codec.weights import ModelFile, fusion_path

__all__ = [
    "BACKENDS",
    "BackendUnavailable",
    "OnnxTransforms",
    "TensorRTTransforms",
    "TorchTransforms",
    "Transforms",
    "exported_fusion",
    "load_torch_net",
    "make_transforms",
]

BACKENDS = ("torch", "onnxruntime", "tensorrt")


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


def _nhwc64(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 2, 3, 1).astype(np.float64)


def _nchw32(y_hat: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(y_hat.transpose(0, 3, 1, 2), dtype=np.float32)


def _export_dir(model: ModelFile, onnx_dir: str | Path | None) -> Path:
    return Path(onnx_dir) if onnx_dir is not None else default_onnx_dir(model.model_id)


def _check_fusion_current(model: ModelFile, meta: dict) -> None:
    """Refuse an export that lacks (or predates) the fusion weights beside the model: the
    torch backend would fuse with them, so decoding without them would differ silently."""
    weights = fusion_path(model.path)
    if not weights.is_file():
        return
    cmd = export_command(model.path, meta["paths"]["sender"].parent)
    if "fusion" not in meta["paths"]:
        raise ExportError(
            f"{meta['paths']['sender'].parent / 'fusion.onnx'}: {weights.name} exists beside "
            f"the model but was not exported; run `{cmd}` (or load with fusion=False)"
        )
    if meta.get("fusion_weights_sha256") not in (None, sha256_file(weights)):
        raise ExportError(
            f"{meta['paths']['fusion']}: exported from other fusion weights than {weights}; "
            f"run `{cmd}`"
        )


class OnnxTransforms:
    """g_a + h_a and g_s on ONNX Runtime (CPU; CUDA with onnxruntime-gpu), torch-free.

    Sessions are built on first use, so a sender never loads the receiver graph.
    """

    def __init__(
        self,
        model: ModelFile,
        onnx_dir: str | Path | None = None,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as e:
            raise BackendUnavailable(
                f"backend 'onnxruntime': onnxruntime is not importable ({e})"
            ) from e
        self.dir = _export_dir(model, onnx_dir)
        self.meta = read_export(self.dir, model.model_id, model.path)
        self.providers = ort_providers(device)
        self.threads = threads
        self._sessions: dict[str, Any] = {}

    def session(self, role: str):
        if role not in self._sessions:
            self._sessions[role] = ort_session(
                self.meta["paths"][role], self.providers, self.threads
            )
        return self._sessions[role]

    def providers_used(self) -> list[str]:
        """The execution providers of the sessions built so far (what ONNX Runtime gave,
        which ``uplink verify`` reports)."""
        return sorted({p for s in self._sessions.values() for p in s.get_providers()})

    @property
    def has_fusion(self) -> bool:
        return "fusion" in self.meta["paths"]

    def fusion(self) -> FusionGraph:
        """The exported fusion block's graph; its session, too, is built on first use."""

        def run(x: np.ndarray, g: np.ndarray) -> np.ndarray:
            return self.session("fusion").run(None, {"x": x, "g": g})[0]

        return FusionGraph(run, self.meta.get("model_id"), fusion_kind(self.meta))

    def analysis(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y, z = self.session("sender").run(None, {"x": np.ascontiguousarray(x, np.float32)})
        return _nhwc64(y), _nhwc64(z)

    def synthesis(self, y_hat: np.ndarray) -> np.ndarray:
        return self.session("receiver").run(None, {"y_hat": _nchw32(y_hat)})[0]


class TensorRTTransforms:
    """g_a + h_a and g_s as TensorRT engines built on this device by ``python -m export trt``.

    Needs ``tensorrt`` and ``cuda-python``; raises :class:`BackendUnavailable` naming the
    missing one. Not run in this repository's CI (no GPU): see ``export/trt.py``.
    """

    def __init__(
        self,
        model: ModelFile,
        onnx_dir: str | Path | None = None,
        device: str = "cuda",
        precision: str = "fp16",
    ) -> None:
        from textboost.codec.trt_runtime import EngineRunner, find_engines, require_tensorrt

        require_tensorrt()
        self.dir = _export_dir(model, onnx_dir)
        self.meta = read_export(self.dir, model.model_id, model.path)
        idx = int(device.partition(":")[2] or 0) if device.startswith("cuda") else 0
        engines = find_engines(self.meta, precision, device_index=idx)
        self._runners = {role: EngineRunner(path, idx) for role, path in engines.items()}

    @property
    def has_fusion(self) -> bool:
        return "fusion" in self._runners

    def fusion(self) -> FusionGraph:
        runner = self._runners["fusion"]

        def run(x: np.ndarray, g: np.ndarray) -> np.ndarray:
            return runner.run({"x": x, "g": g})["fused"]

        return FusionGraph(run, None, fusion_kind(self.meta))

    def analysis(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self._runners["sender"].run({"x": np.ascontiguousarray(x, np.float32)})
        return _nhwc64(out["y"]), _nhwc64(out["z"])

    def synthesis(self, y_hat: np.ndarray) -> np.ndarray:
        return self._runners["receiver"].run({"y_hat": _nchw32(y_hat)})["x_hat"]


def make_transforms(
    model: ModelFile,
    backend: str = "torch",
    device: str = "cpu",
    *,
    onnx_dir: str | Path | None = None,
    precision: str = "fp16",
) -> Transforms:
    """The transforms of ``model`` on a backend: torch, onnxruntime or tensorrt.

    ``onnx_dir``: the folder ``python -m export onnx`` wrote (default: the cache folder
    of this model id, :func:`textboost.codec.exported.default_onnx_dir`).
    """
    if backend == "torch":
        return TorchTransforms(model, device)
    if backend == "onnxruntime":
        return OnnxTransforms(model, onnx_dir, device)
    if backend == "tensorrt":
        return TensorRTTransforms(model, onnx_dir, "cuda" if device == "cpu" else device, precision)
    raise ValueError(f"backend {backend!r} unknown; expected one of: {', '.join(BACKENDS)}")


def exported_fusion(
    model: ModelFile, transforms: Transforms, fusion: bool | None = None
) -> FusionGraph | None:
    """The fusion block's graph (or None) beside exported transforms (not torch's).

    ``fusion``: None uses the exported block when the model has fusion weights, True
    requires it, False leaves it out. An export that lacks or predates the weights beside
    the model is refused (:class:`ExportError`). The fusion package wraps the graph
    (:class:`textboost.fusion.exported.OnnxFusion`).
    """
    if fusion is False:
        return None
    t: Any = transforms
    if not hasattr(t, "meta"):
        raise ValueError("exported_fusion is for exported backends; torch loads the block")
    _check_fusion_current(model, t.meta)
    if t.has_fusion:
        return t.fusion()
    if fusion:
        raise ExportError(
            f"{t.dir / 'fusion.onnx'}: no exported fusion block (is "
            f"{fusion_path(model.path).name} beside the model?); run "
            f"`{export_command(model.path, t.dir)}`"
        )
    return None
