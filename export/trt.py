"""ONNX → TensorRT engines, built on the target device through the TensorRT Python API.

One engine per graph (sender, receiver, fusion) and precision:

- fp32: ``BuilderFlag.TF32`` cleared, so float32 convolutions stay float32 on Ampere and
  later (TensorRT enables TF32 by default);
- fp16: TensorRT 10 (JetPack 6 has 10.3): the float32 graph with ``BuilderFlag.FP16``
  (TensorRT picks fp16 kernels where faster). TensorRT 11 removed that flag (strong
  typing only): the float16 graphs of ``python -m export onnx --fp16`` are built as a
  strongly typed network. I/O stays float32 either way. Only g_a/h_a/g_s/fusion run
  here, so fp16 changes pixels, never the ability to decode: the entropy parameters are
  computed exactly elsewhere.

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


def has_fp16_flag(trt) -> bool:
    return hasattr(trt.BuilderFlag, "FP16")


def build_engine(
    onnx_path: Path, out: Path, precision: str, profile: dict, strongly_typed: bool = False
) -> float:
    """Build and write one serialized engine; returns the build time in seconds.

    ``strongly_typed``: the graph's own types decide the precision (a float16 graph for
    fp16 on TensorRT ≥ 11); otherwise fp16 sets ``BuilderFlag.FP16``.
    """
    trt = require_tensorrt()
    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0  # explicit batch is the only mode since TensorRT 10
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision {precision!r}: expected fp16 or fp32")
    if precision == "fp16" and not strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    opt = builder.create_optimization_profile()
    for name, (lo, mid, hi) in profile.items():
        opt.set_shape(name, tuple(lo), tuple(mid), tuple(hi))
    config.add_optimization_profile(opt)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise RuntimeError(f"{onnx_path}: TensorRT engine build failed ({precision})")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(engine)  # IHostMemory exposes the buffer protocol
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
    typed16 = not has_fp16_flag(trt)
    for role in meta["paths"]:
        for precision in precisions:
            typed = precision == "fp16" and typed16
            onnx_path = (meta["paths_fp16"] if typed else meta["paths"]).get(role)
            if onnx_path is None:
                raise FileNotFoundError(
                    f"{onnx_dir}: TensorRT {trt.__version__} has no FP16 builder flag and the "
                    f"export has no float16 {role} graph; run `python -m export onnx --fp16 "
                    f"--out {onnx_dir}`"
                )
            sha = meta["graphs_fp16" if typed else "graphs"][role]["sha256"]
            key = engine_key(sha, gpu, trt.__version__, precision, profiles[role])
            path = folder / f"{role}-{precision}-{key}.engine"
            cached = path.is_file() and not force
            seconds = (
                0.0 if cached else build_engine(onnx_path, path, precision, profiles[role], typed)
            )
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
