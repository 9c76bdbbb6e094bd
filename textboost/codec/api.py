"""`Codec`: images in, `.tbx` bytes out, and back; the codec alone.

    codec = Codec.load()                          # the shipped default model
    data = codec.encode(img, rate=0.5)            # rate ∈ [0, 1], continuous
    data = codec.encode_to_budget(img, max_bytes=1500)
    data = codec.encode_to_budget(img, bpp=0.03, progress=print)  # each search step
    img2 = codec.decode(data)                     # or groups=k: first k y groups only

Encoder and decoder run the same exact parameter loop (``params.ExactParams``); only
the transforms g_a / h_a / g_s run on a float backend.

The method around it (paper §4: words spotted and carried in the container's text
section inside the budget, rendered and fused at the receiver) is composed by
:class:`textboost.pipeline.api.Pipeline` from the public calls here: ``prepare`` and
``latents`` (an :class:`Analysis` with the text section it carries), ``encode`` and
``encode_to_budget`` with the pipeline's ``analyse`` (the budget search counts the text
section's bytes), ``parse`` and ``decode`` of a parsed container.
This package imports neither the text side channel nor the fusion block.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController

from textboost.bitstream.capture import CaptureMeta
from textboost.bitstream.container import FULL_SCALE, BitstreamError, Container, Header, coded_size
from textboost.codec.analysis import Analysis
from textboost.codec.backends import Transforms, make_transforms
from textboost.codec.budget import (
    MAX_CODED_PIXELS,
    BudgetError,
    Progress,
    SearchStep,
    first_scale,
    fit_budget,
    start_scale,
)
from textboost.codec.coder import new_range_encoder, range_decoder, stream_bytes
from textboost.codec.config import Z_STRIDE, CodecConfig
from textboost.codec.exact import (
    LATENT_FRAC,
    PARAM_FRAC,
    RATE_MAX,
    dequantize_q6,
    interp_gain_q6,
    step_q22,
)
from textboost.codec.image import (
    MAX_IMAGE_PIXELS,
    check_size,
    load_image,
    pad_to_multiple,
    resize,
    to_rgb8,
)
from textboost.codec.params import ExactParams, Observer
from textboost.codec.rate import check_bpp, check_bpp_budget, check_max_bytes, check_rate
from textboost.codec.refine import check_effort, refine_analysis, refine_to_budget, torch_net
from textboost.codec.tiled import synthesis_tiled
from textboost.codec.weights import ModelFile

__all__ = ["Analyser", "Analysis", "BudgetError", "Codec", "SearchStep"]

# How an encode analyses its image: (RGB image, scale, capture record) -> Analysis.
Analyser = Callable[[np.ndarray, int, CaptureMeta | None], Analysis]

# The exact path is many small matrix products: one BLAS thread is faster (no thread
# wake-ups), and on a loaded edge CPU far faster. Results do not depend on it.
EXACT_BLAS_THREADS = 1
Z_LIMIT = 1 << 14
# The largest image a stream's header may ask the decoder for (width x height): what the
# sender takes in (64 MP); g_s itself only ever runs on the coded size, at most
# MAX_CODED_PIXELS. Per codec: ``Codec.max_pixels``; per call: ``decode(..., max_pixels=)``.
MAX_DECODE_PIXELS = MAX_IMAGE_PIXELS


@functools.cache
def _thread_controller() -> ThreadpoolController:
    """The process's thread pools, inspected once (each inspection reads the loaded
    libraries: ≈ 0.5 ms, paid on every encode when it was per call)."""
    return ThreadpoolController()


def _exact_threads(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _thread_controller().limit(limits=EXACT_BLAS_THREADS, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


class Codec:
    def __init__(
        self,
        model: ModelFile,
        transforms: Transforms,
    ) -> None:
        self.model = model
        self.max_pixels = MAX_DECODE_PIXELS  # decode limit on the header's width x height
        self.cfg = CodecConfig.from_json(model.config_json)
        self.transforms = transforms
        self.params = ExactParams(model.exact_tables(), self.cfg.groups)
        self.y_tables = model.y_tables()
        self.z_tables = model.z_tables()
        self.gain_anchors_q6 = model.tensors["gain_anchors_q6"].astype(np.int64)
        self.z_gain_anchors_q6 = model.tensors["z_gain_anchors_q6"].astype(np.int64)
        if len(self.z_tables.pmfs) != self.cfg.z_channels:
            raise ValueError(
                f"{model.path}: {len(self.z_tables.pmfs)} z tables for "
                f"{self.cfg.z_channels} channels"
            )

    @classmethod
    def load(
        cls,
        path: str | Path | ModelFile | None = None,
        *,
        backend: str = "torch",
        device: str = "cpu",
        onnx_dir: str | Path | None = None,
    ) -> Codec:
        """Load a model file (None: the shipped default); never touches the network.

        ``backend``: torch, onnxruntime or tensorrt; the last two run the graphs of
        ``python -m export onnx`` from ``onnx_dir`` (default: the cache folder of the
        model id) and never import torch.
        """
        model = path if isinstance(path, ModelFile) else ModelFile.load(path)
        return cls(model, make_transforms(model, backend, device, onnx_dir=onnx_dir))

    @property
    def model_id(self) -> bytes:
        return self.model.model_id

    @property
    def n_groups(self) -> int:
        return len(self.cfg.groups)

    # -- sender ------------------------------------------------------------------------

    def prepare(self, img, scale: int = FULL_SCALE) -> tuple[np.ndarray, np.ndarray]:
        """(the source RGB, the image at the coded size) of an image or its file, checked:
        a size the container cannot carry or a bad ``scale`` (eighths, ≥ 8) is a
        ValueError before any transform runs."""
        a = load_image(img) if isinstance(img, str | Path) else to_rgb8(img)
        h, w = a.shape[:2]
        check_size(w, h)
        Header(self.model_id, w, h, 0, self.n_groups, scale)  # validates size and scale
        return a, a if scale == FULL_SCALE else resize(a, *coded_size(w, h, scale))

    def analyse(
        self, img, scale: int = FULL_SCALE, meta: CaptureMeta | None = None, text: bytes = b""
    ) -> Analysis:
        """Run g_a and h_a (everything that does not depend on the rate).

        ``scale`` (eighths, ≥ 8) codes the image that many eighths smaller a side;
        ``text``: the container's text section to carry (counted in every budget)."""
        a, coded = self.prepare(img, scale)
        h, w = a.shape[:2]
        y, z = self.latents(coded)
        return Analysis(w, h, y, z, a, scale, text, meta, coded)

    def analyse_smaller(self, an: Analysis, scale: int) -> Analysis:
        """The same image analysed at another scale, keeping its words.

        A smaller scale is resampled from the larger coded image already at hand (a small
        array) rather than from the source; Lanczos from an image that is already above
        the target's resolution differs from the direct resampling by about 0.2 grey
        levels on average."""
        src = an.coded if an.coded is not None and scale >= an.scale else an.image
        coded = resize(src, *coded_size(an.width, an.height, scale))
        y, z = self.latents(coded)
        return replace(an, y=y, z=z, scale=scale, coded=coded)

    def latents(self, coded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """g_a and h_a of an image at its coded size."""
        x = pad_to_multiple(coded, Z_STRIDE).astype(np.float32) / 255.0
        return self.transforms.analysis(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))

    def _z_step(self, rate_q: int) -> np.ndarray:
        """Per-channel quantisation step of z at this rate, in units of 2^-22."""
        return step_q22(interp_gain_q6(self.z_gain_anchors_q6, rate_q))

    def quantise_z(self, z: np.ndarray, rate_q: int) -> np.ndarray:
        """ẑ (int64 symbols) of g_a/h_a's z at integer rate ``rate_q``, as the stream
        carries it."""
        z_hat = np.floor(z / (self._z_step(rate_q) * 2.0**-22) + 0.5)
        return np.clip(z_hat, -Z_LIMIT, Z_LIMIT).astype(np.int64)

    def hyper(self, z_hat: np.ndarray, rate_q: int) -> np.ndarray:
        """h_s of ẑ dequantised with the rate's z step, exactly (NHWC): what both ends
        derive the entropy parameters of y from."""
        z_step = self._z_step(rate_q)
        return self.params.hyper(dequantize_q6(np.zeros_like(z_hat), z_hat, z_step))

    @_exact_threads
    def code_latents(
        self, an: Analysis, rate_q: int, observe: Observer | None = None
    ) -> tuple[bytes, list[bytes], np.ndarray]:
        """Entropy-code z and y at integer rate ``rate_q`` (0..65535).

        Returns the z stream, the y group streams and ŷ (integers in 1/64). ``observe``
        sees each group's entropy parameters (:meth:`ExactParams.code_group`).
        """
        z_hat = self.quantise_z(an.z, rate_q)
        enc = new_range_encoder()
        self.z_tables.encode(enc, z_hat, _channel_index(z_hat.shape))
        z_bytes = stream_bytes(enc)
        hyper = self.hyper(z_hat, rate_q)
        gain = interp_gain_q6(self.gain_anchors_q6, rate_q)
        groups: list[bytes] = []
        y_q: list[np.ndarray] = []
        starts = np.cumsum([0, *self.cfg.groups])
        for k in range(self.n_groups):
            enc = new_range_encoder()
            yk = an.y[..., starts[k] : starts[k + 1]]

            def symbols(k, rows, mu, idx, step, enc=enc, yk=yk):
                # (y − μ) / Δ + 0.5 in float64, floored: in place in the gathered copy
                u = yk[rows].astype(np.float64, copy=False)
                u -= mu * 2.0**-PARAM_FRAC
                u /= step * 2.0**-22
                u += 0.5
                sym = np.floor(u, out=u).astype(np.int64)
                self.y_tables.encode(enc, sym, idx)
                return sym

            y_q.append(self.params.code_group(k, hyper, _cat(y_q), gain, symbols, observe))
            groups.append(stream_bytes(enc))
        return z_bytes, groups, np.concatenate(y_q, axis=-1)

    def encode_analysis(self, an: Analysis, rate_q: int, observe: Observer | None = None) -> bytes:
        """The `.tbx` bytes of an analysed image at integer rate ``rate_q`` (0..65535)."""
        z_bytes, groups, _ = self.code_latents(an, rate_q, observe)
        header = Header(
            self.model_id, an.width, an.height, rate_q, self.n_groups, an.scale, an.meta
        )
        return Container(header, an.text, z_bytes, tuple(groups)).to_bytes()

    def encode(
        self,
        img,
        rate: float = 0.5,
        meta: CaptureMeta | None = None,
        effort: int = 0,
        analyse: Analyser | None = None,
    ) -> bytes:
        """Encode at a continuous rate parameter in [0, 1] (0 = lowest bitrate).

        Images over ``MAX_CODED_PIXELS`` are coded at the largest ladder scale within it.
        ``meta`` (capture time, place, camera) goes into the header. ``effort`` > 0
        refines the latents for this rate first (:mod:`textboost.codec.refine`: more
        encoder time, same decoder; needs torch). ``analyse``: how the image is analysed
        (default :meth:`analyse`; a pipeline's carries the words it spots).
        """
        check_rate(rate)
        if check_effort(effort):
            torch_net(self)  # before any work: effort needs torch (a one-line error)
        a = load_image(img) if isinstance(img, str | Path) else to_rgb8(img)
        h, w = a.shape[:2]
        an = (analyse or self.analyse)(a, start_scale(w, h), meta)
        rate_q = round(rate * RATE_MAX)
        return self.encode_analysis(refine_analysis(self, an, rate_q, effort), rate_q)

    def encode_to_budget(
        self,
        img,
        max_bytes: int | None = None,
        bpp: float | None = None,
        search: bool = True,
        meta: CaptureMeta | None = None,
        progress: Progress | None = None,
        effort: int = 0,
        method: str = "predict",
        analyse: Analyser | None = None,
        first_step: str = "analyse",
    ) -> bytes:
        """The best stream whose real bytes, text section and metadata included, fit
        ``max_bytes`` (or the bytes of ``bpp``, :func:`textboost.codec.rate.budget_bytes`).

        ``progress`` is called with a :class:`SearchStep` before each analysis and after
        each encode and comparison (a CLI draws its progress line from them); the first
        step's kind is ``first_step``.
        ``effort`` > 0 refines the latents of the stream the search picked and searches
        the rate again around it on real bytes, keeping whichever decodes better
        (:func:`textboost.codec.refine.refine_to_budget`; needs torch).
        ``method``: ``"predict"`` (predicted bytes, the scale chosen without decodes),
        ``"check"`` (the same, a near tie with the next larger scale settled by decoding
        both) or ``"full"`` (the rate on real bytes alone, scales compared by decoding), as
        :func:`textboost.codec.budget.fit_budget`; ``search=False`` compares no scales.
        ``analyse``: how the image is analysed at the first scale (default
        :meth:`analyse`; a pipeline's spots the words and carries them, so their bytes
        count in the budget).

        Raises: ValueError for a bad argument or an image too small for ``bpp`` (before
        any work, :mod:`textboost.codec.rate`); :class:`BudgetError` (with the smallest
        stream in bytes) when no stream of this image fits.
        """
        if (max_bytes is None) == (bpp is None):
            raise ValueError("give exactly one of max_bytes or bpp")
        if max_bytes is not None:
            check_max_bytes(max_bytes)
        else:
            check_bpp(bpp)
        if check_effort(effort):
            torch_net(self)
        what = str(img) if isinstance(img, str | Path) else "image"
        a = load_image(img) if isinstance(img, str | Path) else to_rgb8(img)
        h, w = a.shape[:2]
        budget = max_bytes if max_bytes is not None else check_bpp_budget(bpp, w, h, what)
        scale = first_scale(w, h, budget, method) if search else start_scale(w, h, budget)
        if progress is not None:
            progress(SearchStep(first_step, coded_size(w, h, scale), budget))
        an = (analyse or self.analyse)(a, scale, meta)
        data = fit_budget(self, an, budget, search=search, progress=progress, method=method)
        if effort == 0:
            return data
        return refine_to_budget(self, an, data, budget, effort, progress)

    # -- receiver ----------------------------------------------------------------------

    @_exact_threads
    def decode_latents(
        self, data: bytes | Container, groups: int | None = None, max_pixels: int | None = None
    ) -> tuple[Header, np.ndarray]:
        """Entropy-decode to (header, ŷ as integers in 1/64, shape (1, h, w, M)); ``data``:
        the stream, or its container already parsed (a receiver parses once).

        Raises:
            BitstreamError: naming the section, for any stream that does not decode, and
                for a header larger than ``max_pixels`` (default ``self.max_pixels``).
        """
        c = self.parse(data)
        hd = c.header
        if hd.n_groups != self.n_groups:
            raise BitstreamError(
                f"header: {hd.n_groups} y groups, this model codes {self.n_groups}"
            )
        limit = self.max_pixels if max_pixels is None else max_pixels
        if hd.width * hd.height > limit:
            raise BitstreamError(
                f"header: image {hd.width}x{hd.height} ({hd.width * hd.height} pixels) exceeds "
                f"the decode limit of {limit} pixels (Codec.max_pixels)"
            )
        cw, ch = hd.coded_size
        if cw * ch > MAX_CODED_PIXELS:
            raise BitstreamError(
                f"header: coded size {cw}x{ch} (scale {hd.scale}/8) exceeds the "
                f"{MAX_CODED_PIXELS}-pixel limit of the transforms (the sender codes larger "
                "images smaller)"
            )
        cw, ch = hd.coded_size
        hz, wz = -(-ch // Z_STRIDE), -(-cw // Z_STRIDE)
        shape = (1, hz, wz, self.cfg.z_channels)
        z_hat = _decode_section(
            lambda: self.z_tables.decode(range_decoder(c.z), _channel_index(shape)), "z"
        )
        np.clip(z_hat, -Z_LIMIT, Z_LIMIT, out=z_hat)  # as the encoder does
        hyper = self.hyper(z_hat, hd.rate)
        gain = interp_gain_q6(self.gain_anchors_q6, hd.rate)
        n = len(c.groups) if groups is None else min(groups, len(c.groups))
        y_q: list[np.ndarray] = []
        for k in range(self.n_groups):
            if k < n:
                dec = range_decoder(c.groups[k])

                def symbols(k, rows, mu, idx, step, dec=dec):
                    return _decode_section(
                        lambda: self.y_tables.decode(dec, idx), f"y group {k + 1}"
                    )
            else:

                def symbols(k, rows, mu, idx, step):
                    return np.zeros(mu.shape, dtype=np.int64)  # missing group: predicted means

            y_q.append(self.params.code_group(k, hyper, _cat(y_q), gain, symbols))
        return hd, np.concatenate(y_q, axis=-1)

    def parse(self, data: bytes | Container) -> Container:
        """The container of a stream of this model (BitstreamError for another model's)."""
        if not isinstance(data, Container):
            return Container.parse(data, model_id=self.model_id)
        if data.header.model_id != self.model_id:
            raise BitstreamError(
                f"header: model id {data.header.model_id.hex()} but this codec's model is "
                f"{self.model_id.hex()} (stream from another model)"
            )
        return data

    def decode_coded(
        self, data: bytes | Container, groups: int | None = None, max_pixels: int | None = None
    ) -> tuple[Header, np.ndarray]:
        """The codec's own output at the coded size (header, HxWx3 uint8): no resampling
        to the image size and no fusion; what the budget search compares."""
        hd, y_q = self.decode_latents(data, groups, max_pixels)
        # in tiles: a 2 MP coded image's g_s would otherwise hold ~1 GB of activations
        x = synthesis_tiled(self.transforms.synthesis, y_q * 2.0**-LATENT_FRAC)
        cw, ch = hd.coded_size
        x = x[0, :, :ch, :cw].transpose(1, 2, 0)
        return hd, (np.clip(x, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)

    def decode(
        self,
        data: bytes | Container,
        groups: int | None = None,
        max_pixels: int | None = None,
    ) -> np.ndarray:
        """Decode to an HxWx3 uint8 image at the header's size (the codec's own output,
        resampled when the stream was coded smaller); ``groups=k`` uses only the first
        k y groups. ``max_pixels``: refuse (BitstreamError) a header asking for more
        pixels (default ``self.max_pixels``, ``MAX_DECODE_PIXELS`` = 64 MPix).
        """
        hd, out = self.decode_coded(data, groups, max_pixels)
        if hd.scale != FULL_SCALE:
            out = resize(out, hd.width, hd.height)
        return out


def _channel_index(shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.arange(shape[-1]), shape)


def _cat(parts: list[np.ndarray]) -> np.ndarray | None:
    return np.concatenate(parts, axis=-1) if parts else None


def _decode_section(fn, name: str):
    try:
        return fn()
    except BitstreamError:
        raise
    except Exception as e:  # constriction asserts (AssertionError) on some corrupt input
        raise BitstreamError(f"{name}: entropy decoding failed ({type(e).__name__}: {e})") from e
