"""``python -m export verify``: the first thing a device owner runs after installing a bundle.

Loads the codec on the chosen backend, encodes a shipped image to a byte budget, decodes
it, and prints each stage's time and the PSNR. Exit 0 when the round trip decodes to an
image of the right size above ``--min-psnr``, 1 otherwise. Torch-free on exported backends.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np

__all__ = ["default_verify_image", "verify"]


def default_verify_image() -> Path:
    """kodim23 as shipped with the package's link_sim data (found without importing it)."""
    spec = importlib.util.find_spec("link_sim")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("no shipped verify image (link_sim data); give --image")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "kodak" / "kodim23.png"


class _Timed:
    """A Transforms proxy that adds up the seconds spent in analysis and synthesis."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seconds = {"analysis": 0.0, "synthesis": 0.0}
        self.calls = {"analysis": 0, "synthesis": 0}

    def _run(self, name, *args):
        t = time.perf_counter()
        out = getattr(self.inner, name)(*args)
        self.seconds[name] += time.perf_counter() - t
        self.calls[name] += 1
        return out

    def analysis(self, x):
        return self._run("analysis", x)

    def synthesis(self, y_hat):
        return self._run("synthesis", y_hat)


def verify(
    model: str | Path | None = None,
    *,
    backend: str = "onnxruntime",
    device: str = "cpu",
    onnx_dir: str | Path | None = None,
    image: str | Path | np.ndarray | None = None,
    max_bytes: int = 2000,
    text: bool = True,
) -> dict:
    from textboost.codec import coder
    from textboost.codec.api import Codec
    from textboost.codec.budget import fit_budget
    from textboost.codec.image import load_image, psnr_db
    from textboost.text.payload import encode_words

    stages: dict[str, float] = {}
    t = time.perf_counter()
    codec = Codec.load(model, backend=backend, device=device, onnx_dir=onnx_dir)
    stages["load"] = time.perf_counter() - t
    timed = _Timed(codec.transforms)
    codec.transforms = timed
    if isinstance(image, np.ndarray):
        img = image
    else:
        img = load_image(image if image is not None else default_verify_image())
    h, w = img.shape[:2]
    t_enc = time.perf_counter()
    words = []
    if text:
        t = time.perf_counter()
        words = codec.spot(img)
        stages["ocr_spot"] = time.perf_counter() - t
    an = codec.analyse(img, text=False)
    an.text, an.words = encode_words(words, w, h), words
    stages["g_a_h_a"] = timed.seconds["analysis"]
    t = time.perf_counter()
    data = fit_budget(codec, an, max_bytes)
    stages["budget_search_and_coding"] = time.perf_counter() - t
    stages["encode_total"] = time.perf_counter() - t_enc
    t_dec = time.perf_counter()
    t = time.perf_counter()
    codec.decode_latents(data)
    stages["entropy_decoding"] = time.perf_counter() - t
    s0 = timed.seconds["synthesis"]
    out_plain = codec.decode(data, fusion=False)
    stages["g_s"] = timed.seconds["synthesis"] - s0
    out = out_plain
    if codec.fusion is not None:
        t = time.perf_counter()
        out = codec.decode(data)
        stages["decode_with_fusion"] = time.perf_counter() - t
    stages["decode_total"] = time.perf_counter() - t_dec
    ok = out.shape == img.shape and len(data) <= max_bytes
    return {
        "ok": bool(ok),
        "backend": backend,
        "device": device,
        "entropy_coder": "portable" if coder.PORTABLE else "constriction",
        "model_id": codec.model_id.hex(),
        "image": f"{w}x{h}",
        "bytes": len(data),
        "max_bytes": max_bytes,
        "bpp": 8 * len(data) / (w * h),
        "words": len(words),
        "psnr_db": float(psnr_db(img, out)),
        "psnr_db_codec_only": float(psnr_db(img, out_plain)),
        "fusion": codec.fusion is not None,
        "transform_calls": timed.calls,
        "seconds": {k: round(v, 4) for k, v in stages.items()},
        "_decoded": np.asarray(out),
    }
