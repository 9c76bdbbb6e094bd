"""torch → ONNX: the sender (g_a + h_a), the receiver (g_s) and the fusion block, with parity.

Exporter: the TorchScript-based one (``torch.onnx.export(..., dynamo=False)`` with
``dynamic_axes``). The torch.export-based exporter (``dynamo=True``, the default since
torch 2.9) needs the ``onnxscript`` package, which is not among the project's
dependencies, and maps ``dynamic_axes`` onto ``torch.export.Dim`` constraints; the
TorchScript tracer needs nothing more and is sound for these graphs: convolutions,
ReLU, sigmoid, additions, no data-dependent control flow, so one trace at one size
serves every height and width (the parity check runs at several sizes to show it).
"""

from __future__ import annotations

import copy
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from textboost.codec.backends import load_torch_net
from textboost.codec.config import Z_STRIDE
from textboost.codec.exported import (
    GRAPHS,
    META_FILE,
    ONNX_FORMAT,
    default_onnx_dir,
    ort_session,
    sha256_file,
)
from textboost.codec.image import load_image, pad_to_multiple
from textboost.codec.weights import ModelFile, fusion_path

__all__ = ["DEFAULT_OPSET", "default_parity_images", "export_onnx", "parity"]

DEFAULT_OPSET = 17
TRACE_SIZE = (128, 192)  # any multiple of 64 will do: the graphs are traced once
REPO = Path(__file__).resolve().parent.parent
# Kodak images that ship with the repository (as link_sim's data; read as files only).
SHIPPED_IMAGES = REPO / "link_sim" / "data" / "kodak"


class Sender(nn.Module):
    def __init__(self, net) -> None:
        super().__init__()
        self.g_a, self.h_a = net.g_a, net.h_a

    def forward(self, x):
        y = self.g_a(x)
        return y, self.h_a(y)


class Half(nn.Module):
    """A float16 copy of a module behind float32 inputs and outputs (casts in the graph):
    the graph TensorRT ≥ 11 builds fp16 engines from (strong typing, no FP16 flag)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.inner = copy.deepcopy(module).half()

    def forward(self, *args):
        out = self.inner(*(a.half() for a in args))
        return tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()


class Receiver(nn.Module):
    def __init__(self, net) -> None:
        super().__init__()
        self.g_s = net.g_s

    def forward(self, y_hat):
        return self.g_s(y_hat)


def _export(module: nn.Module, args: tuple, path: Path, inputs, outputs, axes, opset) -> None:
    tmp = path.with_suffix(".onnx.tmp")
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy-exporter and tracer notices
        torch.onnx.export(
            module.eval(),
            args,
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    os.replace(tmp, path)


def default_parity_images() -> list[Path]:
    return sorted(SHIPPED_IMAGES.glob("*.png"))[:3]


def _crops(img: np.ndarray) -> list[np.ndarray]:
    """The image padded as the codec pads it, and a smaller, differently shaped crop:
    two sizes per image, to check that the height and width really are dynamic."""
    h, w = img.shape[:2]
    crop = img[: max(64, h // 2 - 17), : max(64, (w * 2) // 3 + 5)]
    return [pad_to_multiple(a, Z_STRIDE) for a in (img, crop)]


def _guidance(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A guidance-like map: a few bright word boxes with glyph-like stripes, zero elsewhere."""
    g = np.zeros((h, w), np.float32)
    for _ in range(4):
        bh, bw = int(rng.integers(8, max(9, h // 6))), int(rng.integers(16, max(17, w // 3)))
        y0, x0 = int(rng.integers(0, h - bh)), int(rng.integers(0, w - bw))
        g[y0 : y0 + bh, x0 : x0 + bw] = (np.arange(bw) // 3 % 2).astype(np.float32)
    return g


class _Stats:
    def __init__(self) -> None:
        self.max = 0.0
        self.sum = 0.0
        self.n = 0

    def add(self, ref: np.ndarray, got: np.ndarray) -> None:
        if ref.shape != got.shape:
            raise AssertionError(f"ONNX output {got.shape}, torch {ref.shape}")
        d = np.abs(ref.astype(np.float64) - got.astype(np.float64))
        self.max = max(self.max, float(d.max()))
        self.sum += float(d.sum())
        self.n += d.size

    def as_dict(self) -> dict:
        return {"max_abs": self.max, "mean_abs": self.sum / max(self.n, 1), "values": self.n}


def _guidance_channels(block) -> int:
    """The fusion graph's second input: the map (1) or the word block's inputs (7)."""
    from textboost.fusion.word_block import WordFusionNet
    from textboost.fusion.word_inputs import INPUT_CHANNELS

    return INPUT_CHANNELS if isinstance(block, WordFusionNet) else 1


def parity(net, fusion_block, paths: dict[str, Path], images: list[Path], seed: int = 0) -> dict:
    """Max / mean absolute error of each ONNX output against torch, on real images."""
    rng = np.random.default_rng(seed)
    sessions = {r: ort_session(p, ["CPUExecutionProvider"]) for r, p in paths.items()}
    stats = {k: _Stats() for k in ("y", "z", "x_hat")}
    if fusion_block is not None:
        stats["fused"] = _Stats()
    sizes = []
    with torch.inference_mode():
        for path in images:
            for a in _crops(load_image(path)):
                sizes.append([a.shape[0], a.shape[1]])
                x = np.ascontiguousarray(a.astype(np.float32).transpose(2, 0, 1)[None] / 255)
                y_t = net.g_a(torch.from_numpy(x))
                z_t = net.h_a(y_t)
                y_o, z_o = sessions["sender"].run(None, {"x": x})
                stats["y"].add(y_t.numpy(), y_o)
                stats["z"].add(z_t.numpy(), z_o)
                # g_s on latents as the decoder sees them: y rounded to a 1/2 step grid
                y_hat = np.floor(y_t.numpy() * 2 + 0.5) / 2
                x_t = net.g_s(torch.from_numpy(y_hat)).numpy()
                x_o = sessions["receiver"].run(None, {"y_hat": y_hat})[0]
                stats["x_hat"].add(x_t, x_o)
                if fusion_block is not None:
                    dec = np.clip(x_t, 0, 1).astype(np.float32)
                    g = _guidance(dec.shape[2], dec.shape[3], rng)[None, None]
                    if _guidance_channels(fusion_block) > 1:  # the word block's inputs
                        g = np.concatenate(
                            [g, rng.random((1, _guidance_channels(fusion_block) - 1,
                                            *g.shape[2:]), np.float32)], axis=1
                        )  # fmt: skip
                    f_t = fusion_block(torch.from_numpy(dec), torch.from_numpy(g)).numpy()
                    f_o = sessions["fusion"].run(None, {"x": dec, "g": g})[0]
                    stats["fused"].add(f_t, f_o)
    return {
        "images": [p.name for p in images],
        "sizes": sizes,
        "provider": "CPUExecutionProvider",
        "outputs": {k: s.as_dict() for k, s in stats.items()},
    }


def export_onnx(
    model_path: str | Path | None = None,
    out: str | Path | None = None,
    *,
    opset: int = DEFAULT_OPSET,
    images: list[Path] | None = None,
    fusion: bool | None = None,
    tolerance: float | None = 1e-2,
    fp16: bool = False,
) -> dict:
    """Export a model's graphs into ``out`` (default: the model id's cache folder).

    ``fusion``: None exports the fusion block when its weights exist beside the model,
    True requires them, False leaves it out. ``fp16`` also writes ``<graph>.fp16.onnx``
    (float16 weights and activations, float32 inputs and outputs), for TensorRT versions
    without the FP16 builder flag; their parity is recorded, not enforced. Returns the
    metadata written to
    ``out/textboost-onnx.json``; raises AssertionError when an output's max absolute
    error exceeds ``tolerance`` (the files stay, with the figures, for inspection).
    """
    model = ModelFile.load(model_path)
    out = Path(out) if out is not None else default_onnx_dir(model.model_id)
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)  # no stale metadata beside new graphs
    t0 = time.perf_counter()
    net = load_torch_net(model)
    cfg = net.cfg
    h, w = TRACE_SIZE
    paths = {"sender": out / GRAPHS["sender"], "receiver": out / GRAPHS["receiver"]}
    _export(
        Sender(net), (torch.rand(1, 3, h, w),), paths["sender"], ["x"], ["y", "z"],
        {"x": {2: "H", 3: "W"}, "y": {2: "h", 3: "w"}, "z": {2: "hz", 3: "wz"}}, opset,
    )  # fmt: skip
    _export(
        Receiver(net), (torch.randn(1, cfg.M, h // 16, w // 16),), paths["receiver"],
        ["y_hat"], ["x_hat"], {"y_hat": {2: "h", 3: "w"}, "x_hat": {2: "H", 3: "W"}}, opset,
    )  # fmt: skip
    block = None
    fweights = fusion_path(model.path)
    if fusion is not False and fweights.is_file():
        from textboost.fusion.runtime import load_fusion

        block = load_fusion(fweights, model_id=model.model_id)
        paths["fusion"] = out / GRAPHS["fusion"]
        gch = _guidance_channels(block)
        _export(
            block, (torch.rand(1, 3, h, w), torch.rand(1, gch, h, w)), paths["fusion"],
            ["x", "g"], ["fused"],
            {"x": {2: "H", 3: "W"}, "g": {2: "H", 3: "W"}, "fused": {2: "H", 3: "W"}}, opset,
        )  # fmt: skip
    elif fusion:
        raise FileNotFoundError(f"{fweights}: no fusion weights beside {model.path.name}")
    else:
        (out / GRAPHS["fusion"]).unlink(missing_ok=True)
    paths16: dict[str, Path] = {}
    if fp16:
        specs = {
            "sender": (Sender(net), (torch.rand(1, 3, h, w),), ["x"], ["y", "z"],
                       {"x": {2: "H", 3: "W"}, "y": {2: "h", 3: "w"}, "z": {2: "hz", 3: "wz"}}),
            "receiver": (Receiver(net), (torch.randn(1, cfg.M, h // 16, w // 16),), ["y_hat"],
                         ["x_hat"], {"y_hat": {2: "h", 3: "w"}, "x_hat": {2: "H", 3: "W"}}),
        }  # fmt: skip
        if block is not None:
            specs["fusion"] = (
                block, (torch.rand(1, 3, h, w), torch.rand(1, gch, h, w)), ["x", "g"], ["fused"],
                {"x": {2: "H", 3: "W"}, "g": {2: "H", 3: "W"}, "fused": {2: "H", 3: "W"}},
            )  # fmt: skip
        for role, (module, args, ins, outs, axes) in specs.items():
            paths16[role] = out / GRAPHS[role].replace(".onnx", ".fp16.onnx")
            _export(Half(module), args, paths16[role], ins, outs, axes, opset)
    for stale in out.glob("*.fp16.onnx"):
        if stale not in paths16.values():
            stale.unlink()
    export_s = time.perf_counter() - t0
    images = list(images) if images is not None else default_parity_images()
    if not images:
        raise FileNotFoundError(f"no parity images (looked in {SHIPPED_IMAGES}); give --images")
    par = parity(net, block, paths, images)
    par16 = parity(net, block, paths16, images) if paths16 else None
    if par16 is not None:
        par16["note"] = (
            "ONNX Runtime CPU runs float16 graphs largely in float32 (the weights are fp16 "
            "already): fp16 arithmetic error shows only on a GPU"
        )
    m, cz = cfg.M, cfg.z_channels
    io = {
        "sender": {"inputs": {"x": "1x3xHxW"},
                   "outputs": {"y": f"1x{m}x(H/16)x(W/16)", "z": f"1x{cz}x(H/64)x(W/64)"}},
        "receiver": {"inputs": {"y_hat": f"1x{m}xhxw"}, "outputs": {"x_hat": "1x3x(16h)x(16w)"}},
        "fusion": {"inputs": {"x": "1x3xHxW", "g": f"1x{_guidance_channels(block)}xHxW"},
                   "outputs": {"fused": "1x3xHxW"}},
    }  # fmt: skip
    meta = {
        "format": ONNX_FORMAT,
        "model_id": model.model_id.hex(),
        "model_file": model.path.name,
        "opset": opset,
        "exporter": f"torch.onnx.export TorchScript (dynamo=False), torch {torch.__version__}",
        "dtype": "float32",
        "layout": "NCHW; H, W multiples of 64 (the codec pads), batch 1",
        "graphs": {
            role: {"file": p.name, "sha256": sha256_file(p), **io[role]}
            for role, p in paths.items()
        },
        "graphs_fp16": {
            role: {"file": p.name, "sha256": sha256_file(p), **io[role]}
            for role, p in paths16.items()
        },
        "fusion_weights_sha256": sha256_file(fweights) if block is not None else None,
        "fusion_block": "words" if _guidance_channels(block) > 1 else "paper",
        "parity": par,
        "parity_fp16": par16,
        "export_seconds": round(export_s, 2),
    }
    bad = {
        k: v["max_abs"]
        for k, v in par["outputs"].items()
        if tolerance is not None and v["max_abs"] > tolerance
    }
    # A failed parity check leaves its figures beside the graphs, under another name, so
    # that no backend loads the graphs.
    name = META_FILE + ".parity-failed" if bad else META_FILE
    tmp = out / (name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, out / name)
    if bad:
        raise AssertionError(
            f"ONNX parity: max abs error above {tolerance}: {bad} (figures in {out / name})"
        )
    meta["dir"] = str(out)
    return meta
