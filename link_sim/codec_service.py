"""The codec as the simulator's nodes see it: encodes through the uplink's encode pipeline
and cache, decodes through a cache of decoded images.

A mission plays a handful of images many times, so encodes are keyed by (image bytes,
rate settings, model id) in :class:`uplink.cache.EncodeCache` and decodes by the bytes
that arrived; on top, both are memoised in memory for the life of the process. A second
run of a scenario, a Monte Carlo repetition or a sweep point only simulates the link.
Cached results are the bytes and pixels the real codec produced, never estimates.

``synthetic=True`` replaces the codec by :class:`SyntheticCodec` (random payloads of the
requested size in a real `.tbx`, no decoder) for studying the link alone. It is never
chosen silently; reports say which one ran and give no quality figures for it.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from link_sim.payloads import SYNTHETIC_MODEL_ID, synthetic_container
from textboost.codec.image import load_image, psnr_db
from textboost.codec.loader import CodecLoader
from textboost.codec.rate import RatePolicy, budget_bytes
from uplink.cache import EncodeCache
from uplink.encode import EncodePipeline

__all__ = ["CachedDecoder", "CodecService", "SyntheticCodec"]


class SyntheticCodec:
    """Writes `.tbx` containers of the requested size with random payloads; cannot decode."""

    model_id = SYNTHETIC_MODEL_ID
    RATE_BPP = (0.01, 0.15)  # the design's rate range, for ``encode(rate=...)``

    def encode(self, img: np.ndarray, rate: float = 0.5) -> bytes:
        lo, hi = self.RATE_BPP
        return self.encode_to_budget(img, bpp=lo + rate * (hi - lo))

    def encode_to_budget(
        self, img: np.ndarray, *, bpp: float | None = None, max_bytes: int | None = None
    ) -> bytes:
        h, w = img.shape[:2]
        n = max_bytes if max_bytes is not None else budget_bytes(bpp or 0.0, w, h)
        key = hashlib.sha256(img.tobytes()).digest() + str(n).encode()
        return synthetic_container(key, w, h, n)


class CachedDecoder:
    """``decode(data)`` as the codec's, answered from memory or disk when seen before
    (the codec is loaded on the first miss)."""

    def __init__(self, loader: CodecLoader, cache_dir: Path) -> None:
        self.loader = loader
        self.cache_dir = cache_dir
        self.misses = 0
        self._memory: dict[str, np.ndarray] = {}

    def path_of(self, data: bytes) -> Path:
        key = hashlib.sha256(data).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.png"

    def decode(self, data: bytes, groups: int | None = None) -> np.ndarray:
        if groups is not None:
            raise ValueError("CachedDecoder decodes what arrived; pass a truncated container")
        key = hashlib.sha256(data).hexdigest()
        if key in self._memory:
            return self._memory[key]
        path = self.path_of(data)
        if path.is_file():
            img = load_image(path)
        else:
            self.misses += 1
            img = np.asarray(self.loader().decode(data), dtype=np.uint8)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{id(self)}.part.png")
            Image.fromarray(img).save(tmp)
            tmp.replace(path)  # atomic: parallel sweep workers may race on one key
        self._memory[key] = img
        return img


class CodecService:
    """Encodes files under a rate setting, decodes bytes, loads originals: each once."""

    def __init__(self, cache_dir: Path, *, synthetic: bool = False) -> None:
        self.cache_dir = Path(cache_dir)
        self.synthetic = synthetic
        self._encode_cache = EncodeCache(self.cache_dir / "encoded")
        self._encoded: dict[tuple[Path, str], bytes] = {}
        self._references: dict[Path, np.ndarray] = {}
        self._quality: dict[tuple[Path, bytes], float] = {}
        self._sizes: dict[Path, tuple[int, int]] = {}
        self.encodes = 0  # encoder runs (cache misses), for the summary and the benchmark
        self.loader = (
            CodecLoader(factory=SyntheticCodec, model_id=SYNTHETIC_MODEL_ID)
            if synthetic
            else CodecLoader()
        )

    @property
    def codec(self) -> Any:
        """The codec (loaded on first use)."""
        return self.loader()

    @cached_property
    def decoder(self) -> CachedDecoder | None:
        """None for synthetic payloads (nothing can decode them)."""
        if self.synthetic:
            return None
        return CachedDecoder(self.loader, self.cache_dir / "decoded")

    @property
    def decodes(self) -> int:
        return self.decoder.misses if self.decoder is not None else 0

    @property
    def model_id(self) -> bytes:
        return self.loader.model_id

    @property
    def name(self) -> str:
        if self.synthetic:
            return "synthetic .tbx payloads (no codec: no quality figures)"
        return f"textboost Codec, model {self.model_id.hex()}"

    def image_size(self, path: Path) -> tuple[int, int]:
        """(width, height) without decoding the whole file."""
        if path not in self._sizes:
            with Image.open(path) as im:
                self._sizes[path] = im.size
        return self._sizes[path]

    def reference(self, path: Path) -> np.ndarray:
        """The original pixels, for PSNR at the ground (one shared array per file)."""
        if path not in self._references:
            self._references[path] = load_image(path)
        return self._references[path]

    def quality(self, path: Path, data: bytes) -> tuple[float, Path]:
        """PSNR of the decoded ``data`` against the original ``path``, and the decoded
        image's file (memoised: a mission decodes the same few streams many times)."""
        assert self.decoder is not None
        key = (path, hashlib.sha256(data).digest())
        if key not in self._quality:
            img = self.decoder.decode(data)
            self._quality[key] = psnr_db(self.reference(path), img)
        return self._quality[key], self.decoder.path_of(data)

    def encode(self, path: Path, policy: RatePolicy) -> bytes:
        """Raises: ``textboost.codec.api.BudgetError`` when no stream fits the budget."""
        key = (path, policy.settings)
        if key not in self._encoded:
            enc = EncodePipeline(policy, self._encode_cache, self.loader).encode(path)
            self.encodes += not enc.cached
            self._encoded[key] = enc.data
        return self._encoded[key]
