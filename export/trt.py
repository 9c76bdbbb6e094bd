"""ONNX → TensorRT engines, built on the target device through the TensorRT Python API.

One engine per graph (sender, receiver, fusion) and precision:

- fp32: ``BuilderFlag.TF32`` cleared, so float32 convolutions stay float32 on Ampere and
  later (TensorRT enables TF32 by default);
- fp16: ``BuilderFlag.FP16`` (I/O stays float32; TensorRT picks fp16 kernels where
  faster). Only g_a/h_a/g_s/fusion run here, so fp16 changes pixels, never the ability
  to decode: the entropy parameters are computed exactly elsewhere.

Each engine has one optimisation profile (min / opt / max shapes,
:func:`textboost.codec.trt_runtime.shape_profiles`) and is cached under a key of the ONNX
graph's SHA-256, the GPU, the TensorRT version, the precision and the profile.

NOT RUN HERE: written against the TensorRT 10 Python API without TensorRT or a GPU on
this machine; ``python -m export trt`` exits 2 with the reason where tensorrt is absent.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from textboost.codec.config import CodecConfig
from textboost.codec.exported import default_onnx_dir, read_export
from textboost.codec.trt_runtime import (
    INDEX_FILE,
    engine_dir,
    engine_key,
    gpu_identity,
    read_index,
    require_tensorrt,
    shape_profiles,
)
from textboost.codec.weights import ModelFile

__all__ = ["build_engine", "build_engines"]

WORKSPACE_BYTES = 1 << 30  # 1 GiB: enough for these graphs; Jetson Orin Nano has 8 GiB shared


def build_engine(onnx_path: Path, out: Path, precision: str, profile: dict) -> float:
    """Build and write one serialized engine; returns the build time in seconds."""
    trt = require_tensorrt()
    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if precision == "fp16":
        if not builder.platform_has_fast_fp16:
            raise RuntimeError("this GPU has no fast fp16; build fp32 instead")
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)
    else:
        raise ValueError(f"precision {precision!r}: expected fp16 or fp32")
    opt = builder.create_optimization_profile()
    for name, (lo, mid, hi) in profile.items():
        opt.set_shape(name, tuple(lo), tuple(mid), tuple(hi))
    config.add_optimization_profile(opt)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise RuntimeError(f"{onnx_path}: TensorRT engine build failed ({precision})")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(bytes(engine))
    os.replace(tmp, out)
    return time.perf_counter() - t0


def build_engines(
    model_path: str | Path | None = None,
    onnx_dir: str | Path | None = None,
    *,
    precisions: list[str] | tuple[str, ...] = ("fp16", "fp32"),
    max_hw: tuple[int, int] = (1088, 1920),
    opt_hw: tuple[int, int] = (768, 1024),
    device_index: int = 0,
    force: bool = False,
) -> dict:
    """Engines for every graph of an ONNX export and each precision, cached on this GPU."""
    trt = require_tensorrt(runtime=True)
    model = ModelFile.load(model_path)
    onnx_dir = Path(onnx_dir) if onnx_dir is not None else default_onnx_dir(model.model_id)
    meta = read_export(onnx_dir, model.model_id, model.path)
    cfg = CodecConfig.from_json(model.config_json)
    gpu = gpu_identity(device_index)
    profiles = shape_profiles(cfg.M, cfg.z_channels, opt_hw, max_hw)
    folder = engine_dir(meta["model_id"])
    index = read_index(folder)
    done = []
    for role, onnx_path in meta["paths"].items():
        sha = meta["graphs"][role]["sha256"]
        for precision in precisions:
            key = engine_key(sha, gpu, trt.__version__, precision, profiles[role])
            path = folder / f"{role}-{precision}-{key}.engine"
            cached = path.is_file() and not force
            seconds = 0.0 if cached else build_engine(onnx_path, path, precision, profiles[role])
            entry = {
                "role": role, "precision": precision, "file": path.name, "key": key,
                "onnx_sha256": sha, "gpu": gpu, "trt_version": trt.__version__,
                "profile": profiles[role],
            }  # fmt: skip
            index = [e for e in index if e.get("file") != path.name] + [entry]
            done.append({**entry, "path": str(path), "cached": cached, "build_seconds": seconds})
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (INDEX_FILE + ".tmp")
    tmp.write_text(json.dumps({"engines": index}, indent=2) + "\n")
    os.replace(tmp, folder / INDEX_FILE)
    return {"model_id": meta["model_id"], "gpu": gpu, "trt_version": trt.__version__,
            "engines": done}  # fmt: skip
