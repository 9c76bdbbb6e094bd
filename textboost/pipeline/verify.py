"""The device check: encode a shipped image with text to a byte budget, decode it, and
time each stage. The first thing a device owner runs (``python -m uplink verify``,
``python -m export verify``, the Jetson bundle's ``verify.sh``): one home for both.

Stages (``seconds``): ``load`` (the codec on its backend), ``ocr_spot`` (the spotter and
the sender's filter, in its own thread while g_a runs), ``g_a_h_a`` (every analysis
transform call, the budget search's smaller scales included), ``analyse`` (the wall time
of spotting and the first g_a together), ``budget_search_and_coding`` (the search and
its entropy coding, less the transforms), ``search_g_s`` (g_s of the search's trial
decodes, when it compares scales), ``encode_total``, ``entropy_decoding`` (with
everything else of the receiver's decode but g_s and the fusion block), ``g_s``, ``fusion``
(when the codec has its fusion block), ``decode_total``; ``encode_cpu`` and
``decode_cpu`` are the process's CPU seconds over the encode and the decode (all its
threads: on a loaded machine the steadier figure). Torch-free on the exported backends.

The round trip runs twice: ``seconds_first_call`` is the first (ONNX Runtime sessions,
the OCR models and the fusion block are built on first use, so its g_a, spotting, g_s
and fusion include that), ``seconds`` the second, the steady state of a sender that keeps
its models loaded.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TimedTransforms", "default_verify_image", "format_verify", "round_trip", "verify"]

VERIFY_IMAGE = ("kodak_text", "kodim23_text.png")


def default_verify_image() -> Path:
    """kodim23 with rendered text, as shipped in link_sim's data (found without importing
    link_sim: :mod:`textboost` must not import it)."""
    spec = importlib.util.find_spec("link_sim")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("no shipped verify image (link_sim data); give --image")
    path = Path(next(iter(spec.submodule_search_locations))) / "data"
    path = path.joinpath(*VERIFY_IMAGE)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: shipped verify image missing; give --image")
    return path


class TimedTransforms:
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


class _TimedFusion:
    """A fusion proxy with ``fuse(decoded, guidance)`` and ``fuse_words(decoded, words)``
    (what ``Pipeline.decode`` calls on an exported block of either kind), for the exported
    and the torch block alike."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.kind = getattr(inner, "kind", "paper")
        self.seconds = 0.0

    def fuse(self, decoded: np.ndarray, guidance: np.ndarray | None = None) -> np.ndarray:
        t = time.perf_counter()
        if hasattr(self.inner, "fuse"):
            out = self.inner.fuse(decoded, guidance)
        else:
            from textboost.fusion.runtime import apply_fusion

            out = apply_fusion(self.inner, decoded, guidance)
        self.seconds += time.perf_counter() - t
        return out

    def fuse_words(self, decoded: np.ndarray, words: list) -> np.ndarray:
        t = time.perf_counter()
        if hasattr(self.inner, "fuse_words"):
            out = self.inner.fuse_words(decoded, words)
        else:
            from textboost.fusion.runtime import fuse

            out = fuse(self.inner, decoded, words)
        self.seconds += time.perf_counter() - t
        return out


def verify(
    model: str | Path | None = None,
    *,
    backend: str = "onnxruntime",
    device: str = "cpu",
    onnx_dir: str | Path | None = None,
    image: str | Path | np.ndarray | None = None,
    max_bytes: int = 2000,
    text: bool = True,
    min_psnr: float = 0.0,
    codec: Any = None,
) -> dict:
    """Two timed round trips (first call, steady state); see the module docstring.
    ``codec``: an already-loaded :class:`~textboost.pipeline.api.Pipeline` (then ``load``
    is 0 and model/backend/device/onnx_dir are not used).

    Returns a dict: ``ok`` (decoded to the right size within the budget, PSNR at least
    ``min_psnr``), backend,
    device, entropy coder, model id, image size, bytes, bpp, words, ``psnr_db`` (the
    receiver's output: fused when the codec has its fusion block), ``psnr_db_codec_only``,
    ``seconds`` per stage, and ``_decoded`` (the image; not JSON).

    Raises: what :meth:`Pipeline.load` raises (missing backend or graphs), ValueError for an
    unreadable image or a budget below the smallest stream.
    """
    from textboost.codec import coder
    from textboost.codec.image import load_image, psnr_db

    t = time.perf_counter()
    if codec is None:
        from textboost.pipeline.api import Pipeline

        codec = Pipeline.load(model, backend=backend, device=device, onnx_dir=onnx_dir)
    load_s = time.perf_counter() - t
    if isinstance(image, np.ndarray):
        img = image
    else:
        img = load_image(image if image is not None else default_verify_image())
    h, w = img.shape[:2]
    first, *_ = round_trip(codec, img, max_bytes, text)
    stages, data, out, out_plain, words = round_trip(codec, img, max_bytes, text)
    first["load"] = stages["load"] = load_s
    psnr = float(psnr_db(img, out))
    ok = out.shape == img.shape and len(data) <= max_bytes and psnr >= min_psnr
    return {
        "ok": bool(ok),
        "backend": backend,
        "device": device,
        "entropy_coder": "portable" if coder.PORTABLE else "constriction",
        **runtime_info(codec.codec.transforms),
        "model_id": codec.model_id.hex(),
        "image": f"{w}x{h}",
        "bytes": len(data),
        "max_bytes": max_bytes,
        "bpp": 8 * len(data) / (w * h),
        "words": len(words),
        "psnr_db": psnr,
        "psnr_db_codec_only": float(psnr_db(img, out_plain)),
        "fusion": codec.fusion is not None,
        "seconds": {k: round(v, 4) for k, v in stages.items()},
        "seconds_first_call": {k: round(v, 4) for k, v in first.items()},
        "_decoded": np.asarray(out),
    }


def runtime_info(transforms: Any) -> dict:
    """Which ONNX Runtime ran (its version, the installed packages that provide the module:
    more than one means the CPU and GPU builds overwrite each other) and the execution
    providers its sessions got; empty for the other backends."""
    used = getattr(transforms, "providers_used", None)
    if used is None:
        return {}
    from importlib import metadata

    import onnxruntime as ort

    packages = sorted(
        f"{d.metadata['Name']} {d.version}"
        for d in metadata.distributions()
        if "onnxruntime" in (d.read_text("top_level.txt") or "").split()
        or any(str(f).startswith("onnxruntime/__init__") for f in d.files or ())
    )
    return {"onnxruntime": ort.__version__, "onnxruntime_packages": packages,
            "providers": used()}  # fmt: skip


class _TimedSpotter:
    """A spotter proxy that adds up the seconds spent spotting (in whichever thread)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seconds = 0.0

    def spot(self, img):
        t = time.perf_counter()
        try:
            return self.inner.spot(img)
        finally:
            self.seconds += time.perf_counter() - t


def round_trip(pipe, img: np.ndarray, max_bytes: int, text: bool, method: str = "predict"):
    """(stage seconds, stream, decoded, decoded without fusion, words) of one encode
    and decode, each stage timed through proxies of the pipeline's parts (a
    :class:`~textboost.pipeline.api.Pipeline` built on the same codec, transforms,
    spotter and fusion block); ``method``: the budget search's
    (:func:`textboost.codec.budget.fit_budget`)."""
    from textboost.codec.budget import first_scale, fit_budget
    from textboost.pipeline.api import Pipeline
    from textboost.text.payload import decode_words

    h, w = img.shape[:2]
    stages: dict[str, float] = {}
    codec = pipe.codec
    transforms = codec.transforms
    timed = TimedTransforms(transforms)
    timed_fusion = _TimedFusion(pipe.fusion) if pipe.fusion is not None else None
    timed_spotter = _TimedSpotter(pipe.spotter) if text else None
    timed_pipe = Pipeline(codec, timed_fusion, timed_spotter, pipe.text_filter)
    timed_pipe.overlap_spotting = pipe.overlap_spotting
    codec.transforms = timed
    try:
        t_enc, c_enc = time.perf_counter(), time.process_time()
        an = timed_pipe.analyse(img, scale=first_scale(w, h, max_bytes, method), text=text)
        analyse_s = time.perf_counter() - t_enc
        a0 = timed.seconds["analysis"]
        t = time.perf_counter()
        data = fit_budget(codec, an, max_bytes, method=method)
        search = time.perf_counter() - t
        search_g_s = timed.seconds["synthesis"]  # trial decodes of the scale search
        if timed_spotter is not None:
            stages["ocr_spot"] = timed_spotter.seconds
        stages["g_a_h_a"] = timed.seconds["analysis"]
        stages["analyse"] = analyse_s
        stages["budget_search_and_coding"] = search - (timed.seconds["analysis"] - a0) - search_g_s
        if search_g_s:
            stages["search_g_s"] = search_g_s
        stages["encode_total"] = time.perf_counter() - t_enc
        stages["encode_cpu"] = time.process_time() - c_enc
        t, c_dec = time.perf_counter(), time.process_time()
        out = timed_pipe.decode(data)
        total = time.perf_counter() - t
        g_s = timed.seconds["synthesis"] - search_g_s
        stages["entropy_decoding"] = total - g_s - (timed_fusion.seconds if timed_fusion else 0.0)
        stages["g_s"] = g_s
        if timed_fusion is not None:
            stages["fusion"] = timed_fusion.seconds
        stages["decode_total"] = total
        stages["decode_cpu"] = time.process_time() - c_dec
        out_plain = timed_pipe.decode(data, fusion=False) if pipe.fusion is not None else out
    finally:
        codec.transforms = transforms
    words = decode_words(an.text, an.width, an.height)  # the words carried
    return stages, data, out, out_plain, words


def format_verify(r: dict) -> list[str]:
    """The human report of :func:`verify`: a summary line, one line per stage, OK/FAILED."""
    fused = "fused" if r["fusion"] else "no fusion block"
    lines = [
        f"{r['backend']} ({r['device']}, {r['entropy_coder']} coder), model {r['model_id']}, "
        f"image {r['image']}: {r['bytes']} bytes ({r['bpp']:.4f} bpp), {r['words']} words, "
        f"PSNR {r['psnr_db']:.2f} dB ({fused}; codec alone {r['psnr_db_codec_only']:.2f})"
    ]
    if "providers" in r:
        pkgs, used = ", ".join(r["onnxruntime_packages"]), ", ".join(r["providers"])
        lines.append(f"  ONNX Runtime {r['onnxruntime']} from {pkgs}; providers {used}")
        if len(r["onnxruntime_packages"]) > 1:
            lines.append("  WARNING: more than one package provides onnxruntime; keep one "
                         "(pip uninstall the other)")  # fmt: skip
    first = r.get("seconds_first_call", {})
    lines.append(f"  {'stage':26s} {'steady state':>15s} {'first call':>12s}")
    lines += [
        f"  {k:26s} {s * 1000:12.1f} ms {first.get(k, s) * 1000:9.1f} ms"
        for k, s in r["seconds"].items()
    ]
    lines.append("OK" if r["ok"] else "FAILED")
    return lines
