"""TensorRT engines at run time: the engine cache and a runner (TensorRT 10 Python API).

Engines are built on the device that runs them (``python -m export trt``, ``export/trt.py``)
and cached under ``<cache>/trt/<model id>/``, one file per graph, precision and cache key;
the key hashes the ONNX graph's SHA-256, the GPU (name and compute capability), the
TensorRT version, the precision and the shape profile, so an engine is never used on
another GPU or TensorRT version. ``index.json`` in that folder lists the engines built.

NOT RUN HERE: this repository's machines have no GPU and no TensorRT; the code follows the
TensorRT 10 API (``execute_async_v3``, named I/O tensors) and ``cuda-python`` for memory,
and its tests skip with the reason ``require_tensorrt`` gives.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from textboost.codec.exported import BackendUnavailable
from textboost.user_cache import cache_root

__all__ = [
    "EngineRunner",
    "TensorRTUnavailable",
    "engine_dir",
    "engine_key",
    "find_engines",
    "gpu_identity",
    "read_index",
    "require_tensorrt",
    "shape_profiles",
]

INDEX_FILE = "index.json"
FUSION_MAX_ROWS = 256 + 2 * 8  # the fusion runs in stripes of 256 rows with an 8-row halo


class TensorRTUnavailable(BackendUnavailable):
    pass


def require_tensorrt(runtime: bool = False):
    """``tensorrt`` (and, for ``runtime``, cuda-python's runtime API), or one clear error."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise TensorRTUnavailable(
            f"tensorrt is not importable here ({e}); install it with `pip install tensorrt` "
            "(x86_64 with CUDA) or, on Jetson, from JetPack (python3-libnvinfer)"
        ) from e
    if runtime:
        _cudart()
    return trt


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python ≥ 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as e:
            raise TensorRTUnavailable(
                f"cuda-python is not importable here ({e}); `pip install cuda-python`"
            ) from e
    return cudart


def _check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return rest[0] if len(rest) == 1 else rest


def gpu_identity(device_index: int = 0) -> dict:
    """Name and compute capability of a CUDA device (part of the engine cache key)."""
    cudart = _cudart()
    props = _check(cudart.cudaGetDeviceProperties(device_index))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return {"name": name.strip("\x00 "), "compute_capability": f"{props.major}.{props.minor}"}


def shape_profiles(
    m: int, cz: int, opt_hw: tuple[int, int], max_hw: tuple[int, int]
) -> dict[str, dict[str, list[list[int]]]]:
    """min / opt / max input shapes per graph; image sizes rounded up to multiples of 64."""
    del cz

    def up(v: int, k: int = 64) -> int:
        return -(-v // k) * k

    (oh, ow), (mh, mw) = (up(opt_hw[0]), up(opt_hw[1])), (up(max_hw[0]), up(max_hw[1]))
    fh = min(FUSION_MAX_ROWS, mh)
    return {
        "sender": {"x": [[1, 3, 64, 64], [1, 3, oh, ow], [1, 3, mh, mw]]},
        "receiver": {
            "y_hat": [[1, m, 4, 4], [1, m, oh // 16, ow // 16], [1, m, mh // 16, mw // 16]]
        },
        "fusion": {
            "x": [[1, 3, 1, 1], [1, 3, min(fh, oh), ow], [1, 3, fh, mw]],
            "g": [[1, 1, 1, 1], [1, 1, min(fh, oh), ow], [1, 1, fh, mw]],
        },
    }


def engine_key(onnx_sha256: str, gpu: dict, trt_version: str, precision: str, profile) -> str:
    blob = json.dumps(
        {"onnx": onnx_sha256, "gpu": gpu, "trt": trt_version, "precision": precision,
         "profile": profile},
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def engine_dir(model_id_hex: str) -> Path:
    return cache_root() / "trt" / model_id_hex


def read_index(folder: Path) -> list[dict]:
    p = folder / INDEX_FILE
    if not p.is_file():
        return []
    return json.loads(p.read_text()).get("engines", [])


def find_engines(meta: dict, precision: str, device_index: int = 0) -> dict[str, Path]:
    """The cached engines for this export, GPU, TensorRT version and precision, per graph."""
    trt = require_tensorrt(runtime=True)
    gpu = gpu_identity(device_index)
    folder = engine_dir(meta["model_id"])
    found: dict[str, Path] = {}
    for e in read_index(folder):
        role = e.get("role")
        shas = {
            g[role]["sha256"] for g in (meta["graphs"], meta.get("graphs_fp16") or {}) if role in g
        }
        if (
            e.get("onnx_sha256") in shas
            and e.get("gpu") == gpu
            and e.get("trt_version") == trt.__version__
            and e.get("precision") == precision
            and (folder / e["file"]).is_file()
        ):
            found[role] = folder / e["file"]
    missing = [r for r in ("sender", "receiver") if r not in found]
    if missing:
        onnx = meta["paths"]["sender"].parent
        raise FileNotFoundError(
            f"{folder}: no {precision} TensorRT engine for {', '.join(missing)} on "
            f"{gpu['name']} with TensorRT {trt.__version__}; run "
            f"`python -m export trt --onnx {onnx} --precision {precision}`"
        )
    return found


class EngineRunner:
    """One deserialised engine with its execution context; numpy in, numpy out."""

    def __init__(self, path: Path, device_index: int = 0) -> None:
        trt = require_tensorrt(runtime=True)
        self._trt = trt
        self._cudart = _cudart()
        _check(self._cudart.cudaSetDevice(device_index))
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"{path}: TensorRT cannot deserialise this engine")
        self.context = self.engine.create_execution_context()
        self.stream = _check(self._cudart.cudaStreamCreate())
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == mode]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) != mode]
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (pointer, bytes)

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                _check(self._cudart.cudaFree(ptr))
            ptr = _check(self._cudart.cudaMalloc(nbytes))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart = self._cudart
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self.inputs:
            a = np.ascontiguousarray(feeds[name], dtype=np.float32)
            self.context.set_input_shape(name, a.shape)
            ptr = self._buffer(name, a.nbytes)
            _check(cudart.cudaMemcpyAsync(ptr, a.ctypes.data, a.nbytes, h2d, self.stream))
            self.context.set_tensor_address(name, ptr)
        out = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            out[name] = np.empty(shape, np.float32)  # fp16 engines keep fp32 I/O
            self.context.set_tensor_address(name, self._buffer(name, out[name].nbytes))
        if not self.context.execute_async_v3(int(self.stream)):
            raise RuntimeError("TensorRT execution failed")
        for name, a in out.items():
            ptr = self._buffers[name][0]
            _check(cudart.cudaMemcpyAsync(a.ctypes.data, ptr, a.nbytes, d2h, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return out

    def __del__(self) -> None:
        try:
            for ptr, _ in self._buffers.values():
                self._cudart.cudaFree(ptr)
        except Exception:
            pass
