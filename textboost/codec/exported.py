"""Exported transform graphs on disk (ONNX, TensorRT engines): where they live and what they are.

``python -m export onnx`` writes, into one folder per model:

    sender.onnx       g_a + h_a:  x (1, 3, H, W) float32 in [0, 1] → y (1, M, H/16, W/16),
                                  z (1, Cz, H/64, W/64)
    receiver.onnx     g_s:        y_hat (1, M, h, w) → x_hat (1, 3, 16h, 16w), unclipped
    fusion.onnx       the fusion block (only when its weights exist beside the model):
                                  x (1, 3, H, W), g (1, 1, H, W) in [0, 1] → fused, unclipped
    *.fp16.onnx       with --fp16: the same graphs in float16 behind float32 I/O
    textboost-onnx.json   format, model id, opset, exporter, SHA-256 of each graph, parity

The default folder is keyed by the model id (:func:`default_onnx_dir`), so graphs of one
model are never used with another; the metadata's model id is checked on load all the
same (a folder given by hand). This module is numpy + onnxruntime only: the edge sender
loads it without torch.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from textboost.user_cache import cache_root

__all__ = [
    "META_FILE",
    "ONNX_FORMAT",
    "BackendUnavailable",
    "ExportError",
    "FusionGraph",
    "cache_root",
    "default_onnx_dir",
    "export_command",
    "fusion_kind",
    "ort_providers",
    "ort_session",
    "read_export",
    "sha256_file",
]

ONNX_FORMAT = "textboost-onnx/1"
META_FILE = "textboost-onnx.json"
GRAPHS = {"sender": "sender.onnx", "receiver": "receiver.onnx", "fusion": "fusion.onnx"}


class BackendUnavailable(RuntimeError):
    """The chosen backend's runtime is not installed here (the message says which)."""


class ExportError(FileNotFoundError):
    """Exported graphs missing, stale, for another model, or unreadable."""


def default_onnx_dir(model_id: bytes) -> Path:
    """Where ``python -m export onnx`` writes a model's graphs unless told: keyed by its id."""
    return cache_root() / "onnx" / model_id.hex()


def export_command(model_path: str | Path | None, out: str | Path | None = None) -> str:
    cmd = "python -m export onnx"
    if model_path is not None:
        cmd += f" --model {model_path}"
    if out is not None:
        cmd += f" --out {out}"
    return cmd


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_export(
    onnx_dir: str | Path, model_id: bytes, model_path: str | Path | None = None
) -> dict:
    """The metadata of an export folder, checked against the model; graph paths resolved.

    Raises :class:`ExportError` naming the missing or wrong file and the command that
    (re)writes it. Checksums of the graphs are verified here, so a truncated or replaced
    file is refused before a session is built from it.
    """
    d = Path(onnx_dir)
    cmd = export_command(model_path, d)
    meta_path = d / META_FILE
    if not meta_path.is_file():
        raise ExportError(f"{meta_path}: no exported ONNX graphs for this model; run `{cmd}`")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise ExportError(f"{meta_path}: unreadable export metadata ({e}); run `{cmd}`") from e
    if not isinstance(meta, dict) or meta.get("format") != ONNX_FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else None
        raise ExportError(f"{meta_path}: format {got!r}, expected {ONNX_FORMAT!r}; run `{cmd}`")
    if meta.get("model_id") != model_id.hex():
        raise ExportError(
            f"{meta_path}: graphs exported from model {meta.get('model_id')}, this model is "
            f"{model_id.hex()}; run `{cmd}`"
        )
    for key in ("graphs", "graphs_fp16"):
        files = {}
        for role, entry in (meta.get(key) or {}).items():
            p = d / entry["file"]
            if not p.is_file():
                raise ExportError(f"{p}: {role} graph missing; run `{cmd}`")
            if sha256_file(p) != entry.get("sha256"):
                raise ExportError(f"{p}: checksum mismatch (corrupt or replaced); run `{cmd}`")
            files[role] = p
        meta[key.replace("graphs", "paths")] = files
    for role in ("sender", "receiver"):
        if role not in meta["paths"]:
            raise ExportError(f"{d / GRAPHS[role]}: {role} graph not in the export; run `{cmd}`")
    return meta


def ort_providers(device: str = "cpu") -> list:
    """Execution providers for a device: "cpu", "cuda[:N]", or "auto" (CUDA when present)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "auto":
        device = "cuda" if "CUDAExecutionProvider" in available else "cpu"
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda" or device.startswith("cuda:"):
        if "CUDAExecutionProvider" not in available:
            raise BackendUnavailable(
                f"device {device!r}: onnxruntime has no CUDAExecutionProvider (install "
                f"onnxruntime-gpu; on Jetson, NVIDIA's JetPack build); it has {available}"
            )
        idx = int(device.partition(":")[2] or 0)
        return [("CUDAExecutionProvider", {"device_id": idx}), "CPUExecutionProvider"]
    raise ValueError(f"device {device!r}: expected cpu, cuda, cuda:N or auto")


def ort_session(path: Path, providers: list, threads: int | None = None):
    """An ONNX Runtime session; an unreadable graph raises ExportError naming the file."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads is None and os.environ.get("TEXTBOOST_ORT_THREADS"):
        threads = int(os.environ["TEXTBOOST_ORT_THREADS"])
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types (InvalidGraph, ...)
        raise ExportError(f"{path}: ONNX Runtime cannot load it ({e})") from e


class FusionGraph(NamedTuple):
    """The exported fusion block's graph: ``run(x, g)`` computes the unclipped
    (1, 3, H, W) output of float (1, 3, H, W) and (1, C, H, W) inputs (C = 1, the guidance
    map, for the paper's block, ``kind`` "paper"; C = 7, the word inputs, for "words").
    The fusion package wraps it (:class:`textboost.fusion.exported.OnnxFusion`)."""

    run: Callable[[np.ndarray, np.ndarray], np.ndarray]
    model_id: str | None
    kind: str


def fusion_kind(meta: dict) -> str:
    """The kind of fusion block an export folder holds (its metadata's ``fusion_block``)."""
    kind = meta.get("fusion_block", "paper")
    if kind not in ("paper", "words"):
        raise ExportError(f"fusion block kind {kind!r}: expected 'paper' or 'words'")
    return kind
