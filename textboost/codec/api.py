"""`Codec`: images in, `.tbx` bytes out, and back.

    codec = Codec.load()                          # the shipped default model
    data = codec.encode(img, rate=0.5)            # rate ∈ [0, 1], continuous
    data = codec.encode_to_budget(img, max_bytes=1500)
    img2 = codec.decode(data)                     # or groups=k: first k y groups only

Encoder and decoder run the same exact parameter loop (``params.ExactParams``); only
the transforms g_a / h_a / g_s run on a float backend.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import constriction
import numpy as np
from threadpoolctl import threadpool_limits

from textboost.codec.backends import Transforms, make_transforms
from textboost.codec.coder import range_decoder, stream_bytes
from textboost.codec.config import Z_STRIDE, CodecConfig
from textboost.codec.container import FULL_SCALE, BitstreamError, Container, Header, coded_size
from textboost.codec.exact import (
    LATENT_FRAC,
    PARAM_FRAC,
    RATE_MAX,
    dequantize_q6,
    interp_gain_q6,
    step_q22,
)
from textboost.codec.image import load_image, pad_to_multiple, psnr_db, resize, to_rgb8
from textboost.codec.params import ExactParams
from textboost.codec.weights import ModelFile

__all__ = ["BudgetError", "Codec"]

# The exact path is many small matrix products: one BLAS thread is faster (no thread
# wake-ups), and on a loaded edge CPU far faster. Results do not depend on it.
EXACT_BLAS_THREADS = 1
MAX_PIXELS = 1 << 26  # 64 MPix: the decoder refuses larger headers rather than exhaust memory
Z_LIMIT = 1 << 14
# Downscale divisors (eighths) tried, in order, when a budget is below the full-size
# lowest rate: 1, 1.25, 1.5, 2, 2.5, 3, 4 and 6 times smaller a side.
BUDGET_SCALES = (8, 10, 12, 16, 20, 24, 32, 48)
SEARCH_BELOW_RATE = RATE_MAX // 2  # below this rate, smaller scales are tried too
SEARCH_SCALES = 3  # at most this many smaller scales decoded and compared


def _exact_threads(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with threadpool_limits(EXACT_BLAS_THREADS, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


class BudgetError(ValueError):
    """No stream of this model fits the requested byte budget."""


@dataclass
class Analysis:
    """Sender-side latents of one image, reusable across rates (budget search)."""

    width: int  # the image's size; the latents code it at ``scale`` eighths smaller
    height: int
    y: np.ndarray  # (1, h, w, M) float64
    z: np.ndarray  # (1, hz, wz, Cz) float64
    image: np.ndarray  # the source RGB, kept so that a budget can re-analyse it smaller
    scale: int = FULL_SCALE


class Codec:
    def __init__(self, model: ModelFile, transforms: Transforms) -> None:
        self.model = model
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
        cls, path: str | Path | None = None, *, backend: str = "torch", device: str = "cpu"
    ) -> Codec:
        """Load a model file (None: the shipped default); never touches the network."""
        model = ModelFile.load(path)
        return cls(model, make_transforms(model, backend, device))

    @property
    def model_id(self) -> bytes:
        return self.model.model_id

    @property
    def n_groups(self) -> int:
        return len(self.cfg.groups)

    # -- sender ------------------------------------------------------------------------

    def analyse(self, img, scale: int = FULL_SCALE) -> Analysis:
        """Run g_a and h_a: everything that does not depend on the rate.

        ``scale`` (eighths, ≥ 8) codes the image that many eighths smaller a side.
        """
        a = load_image(img) if isinstance(img, str | Path) else to_rgb8(img)
        h, w = a.shape[:2]
        Header(self.model_id, w, h, 0, self.n_groups, scale)  # validates size and scale
        coded = a if scale == FULL_SCALE else resize(a, *coded_size(w, h, scale))
        x = pad_to_multiple(coded, Z_STRIDE).astype(np.float32) / 255.0
        y, z = self.transforms.analysis(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))
        return Analysis(w, h, y, z, a, scale)

    def _z_step(self, rate_q: int) -> np.ndarray:
        """Per-channel quantisation step of z at this rate, in units of 2^-22."""
        return step_q22(interp_gain_q6(self.z_gain_anchors_q6, rate_q))

    def _hyper(self, z_hat: np.ndarray, z_step: np.ndarray) -> np.ndarray:
        """h_s of ẑ dequantised with the rate's z step, exactly."""
        return self.params.hyper(dequantize_q6(np.zeros_like(z_hat), z_hat, z_step))

    @_exact_threads
    def code_latents(self, an: Analysis, rate_q: int) -> tuple[bytes, list[bytes], np.ndarray]:
        """Entropy-code z and y at integer rate ``rate_q`` (0..65535).

        Returns the z stream, the y group streams and ŷ (integers in 1/64).
        """
        z_step = self._z_step(rate_q)
        z_hat = np.floor(an.z / (z_step * 2.0**-22) + 0.5)
        z_hat = np.clip(z_hat, -Z_LIMIT, Z_LIMIT).astype(np.int64)
        enc = constriction.stream.queue.RangeEncoder()
        self.z_tables.encode(enc, z_hat, _channel_index(z_hat.shape))
        z_bytes = stream_bytes(enc)
        hyper = self._hyper(z_hat, z_step)
        gain = interp_gain_q6(self.gain_anchors_q6, rate_q)
        groups: list[bytes] = []
        y_q: list[np.ndarray] = []
        starts = np.cumsum([0, *self.cfg.groups])
        for k in range(self.n_groups):
            enc = constriction.stream.queue.RangeEncoder()
            yk = an.y[..., starts[k] : starts[k + 1]]

            def symbols(k, rows, mu, idx, step, enc=enc, yk=yk):
                u = (yk[rows] - mu * 2.0**-PARAM_FRAC) / (step * 2.0**-22)
                sym = np.floor(u + 0.5).astype(np.int64)
                self.y_tables.encode(enc, sym, idx)
                return sym

            y_q.append(self.params.code_group(k, hyper, _cat(y_q), gain, symbols))
            groups.append(stream_bytes(enc))
        return z_bytes, groups, np.concatenate(y_q, axis=-1)

    def encode_analysis(self, an: Analysis, rate_q: int) -> bytes:
        """The `.tbx` bytes of an analysed image at integer rate ``rate_q`` (0..65535)."""
        z_bytes, groups, _ = self.code_latents(an, rate_q)
        header = Header(self.model_id, an.width, an.height, rate_q, self.n_groups, an.scale)
        return Container(header, b"", z_bytes, tuple(groups)).to_bytes()

    def encode(self, img, rate: float = 0.5) -> bytes:
        """Encode at a continuous rate parameter in [0, 1] (0 = lowest bitrate)."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate {rate} outside [0, 1]")
        return self.encode_analysis(self.analyse(img), round(rate * RATE_MAX))

    def encode_to_budget(
        self, img, max_bytes: int | None = None, bpp: float | None = None
    ) -> bytes:
        """The highest rate whose real bytes fit ``max_bytes`` (or bpp × pixels / 8)."""
        if (max_bytes is None) == (bpp is None):
            raise ValueError("give exactly one of max_bytes or bpp")
        an = self.analyse(img)
        budget = int(max_bytes if max_bytes is not None else bpp * an.width * an.height / 8)
        return self.fit_budget(an, budget)

    def fit_budget(self, an: Analysis, budget: int, search: bool = True) -> bytes:
        """The best stream of an analysed image within ``budget`` bytes (g_a already ran).

        The rate is bisected on real encodings. When even the lowest rate does not fit,
        the image is coded smaller: the first of ``BUDGET_SCALES`` whose lowest rate
        fits. Near the bottom of the rate range (rate below ``SEARCH_BELOW_RATE``), a
        smaller image at a higher rate often looks better, so with ``search`` the
        sender decodes its candidate and the next smaller scales and keeps the best
        PSNR, stopping at the first that is worse (the baselines' search, on real
        bytes). Only when the smallest scale overflows too does the stream keep just
        the first k y groups (a valid, coarser stream; the rest are predicted).
        """
        scales = [sc for sc in BUDGET_SCALES if sc >= an.scale]
        for i, scale in enumerate(scales):
            if scale != an.scale:
                an = self.analyse(an.image, scale)
            if (data := self._fit_all_groups(an, budget)) is not None:
                if search and Container.parse(data).header.rate < SEARCH_BELOW_RATE:
                    return self._search_scales(an, data, scales[i + 1 :], budget)
                return data
        keep = self.n_groups
        while len(data := self._encode_groups(an, 0, keep)) > budget:
            if keep == 0:
                raise BudgetError(
                    f"budget {budget} bytes is below the smallest stream of this image "
                    f"({len(data)} bytes: header and z alone at 1/{an.scale / 8:g} size)"
                )
            keep -= 1
        return self._bisect_rate(an, budget, keep, data)

    def _search_scales(self, an: Analysis, data: bytes, smaller: list[int], budget: int) -> bytes:
        """``data`` or a stream of a smaller scale, whichever decodes with the best PSNR."""
        best, best_psnr = data, psnr_db(self.decode(data), an.image)
        for scale in smaller[:SEARCH_SCALES]:
            cand = self._fit_all_groups(self.analyse(an.image, scale), budget)
            if cand is None:
                break
            p = psnr_db(self.decode(cand), an.image)
            if p <= best_psnr:
                break
            best, best_psnr = cand, p
        return best

    def _fit_all_groups(self, an: Analysis, budget: int) -> bytes | None:
        """The highest-rate stream of every y group within ``budget``; None when rate 0
        does not fit."""
        floor = self._encode_groups(an, 0, self.n_groups)
        return self._bisect_rate(an, budget, self.n_groups, floor) if len(floor) <= budget else None

    def _bisect_rate(self, an: Analysis, budget: int, keep: int, floor: bytes) -> bytes:
        """The highest rate whose stream of ``keep`` groups fits; ``floor`` is the rate-0
        stream of ``keep`` groups, already coded and known to fit."""
        best, lo, hi = floor, 0, RATE_MAX  # invariant: lo fits
        top = self._encode_groups(an, hi, keep)
        if len(top) <= budget:
            return top
        while hi - lo > 64:  # 1/1024 of the range: finer steps change a handful of bytes
            mid = (lo + hi) // 2
            data = self._encode_groups(an, mid, keep)
            if len(data) <= budget:
                lo, best = mid, data
            else:
                hi = mid
        return best

    def _encode_groups(self, an: Analysis, rate_q: int, keep: int) -> bytes:
        data = self.encode_analysis(an, rate_q)
        return data if keep == self.n_groups else Container.parse(data).truncated(keep).to_bytes()

    # -- receiver ----------------------------------------------------------------------

    @_exact_threads
    def decode_latents(self, data: bytes, groups: int | None = None) -> tuple[Header, np.ndarray]:
        """Entropy-decode to (header, ŷ as integers in 1/64, shape (1, h, w, M))."""
        c = Container.parse(data, model_id=self.model_id)
        hd = c.header
        if hd.n_groups != self.n_groups:
            raise BitstreamError(
                f"header: {hd.n_groups} y groups, this model codes {self.n_groups}"
            )
        if hd.width * hd.height > MAX_PIXELS:
            raise BitstreamError(
                f"header: image {hd.width}x{hd.height} exceeds the decoder limit of "
                f"{MAX_PIXELS} pixels"
            )
        cw, ch = hd.coded_size
        hz, wz = -(-ch // Z_STRIDE), -(-cw // Z_STRIDE)
        shape = (1, hz, wz, self.cfg.z_channels)
        z_hat = _decode_section(
            lambda: self.z_tables.decode(range_decoder(c.z), _channel_index(shape)), "z"
        )
        np.clip(z_hat, -Z_LIMIT, Z_LIMIT, out=z_hat)  # as the encoder does
        hyper = self._hyper(z_hat, self._z_step(hd.rate))
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

    def decode(self, data: bytes, groups: int | None = None) -> np.ndarray:
        """Decode to an HxWx3 uint8 image; ``groups=k`` uses only the first k y groups."""
        hd, y_q = self.decode_latents(data, groups)
        x = self.transforms.synthesis(y_q * 2.0**-LATENT_FRAC)
        cw, ch = hd.coded_size
        x = x[0, :, :ch, :cw].transpose(1, 2, 0)
        out = (np.clip(x, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
        return out if hd.scale == FULL_SCALE else resize(out, hd.width, hd.height)


def _channel_index(shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.arange(shape[-1]), shape)


def _cat(parts: list[np.ndarray]) -> np.ndarray | None:
    return np.concatenate(parts, axis=-1) if parts else None


def _decode_section(fn, name: str):
    try:
        return fn()
    except BitstreamError:
        raise
    except (ValueError, RuntimeError, OverflowError) as e:
        raise BitstreamError(f"{name}: entropy decoding failed ({e})") from e
