"""Encode pipeline: image file -> `.tbx` bytes under a rate policy, through the cache.

The codec (and with it torch or an ONNX runtime) is loaded lazily on the first encode
that misses the cache, never at import: the edge node must start without torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from textboost.codec.container import Container
from uplink.cache import EncodeCache, file_sha256

if TYPE_CHECKING:
    from textboost.codec.api import Codec

__all__ = ["ByteBudget", "EncodePipeline", "Encoded", "FixedBpp", "FixedRate", "RatePolicy"]


@dataclass(frozen=True, slots=True)
class FixedRate:
    """The codec's rate knob, 0.0 (≈ 0.01 bpp) .. 1.0 (≈ 0.15 bpp)."""

    rate: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate {self.rate}: expected 0.0..1.0")

    @property
    def settings(self) -> str:
        return f"rate={self.rate:.6g}"

    def encode(self, codec: Codec, img: np.ndarray) -> bytes:
        return codec.encode(img, rate=self.rate)


@dataclass(frozen=True, slots=True)
class FixedBpp:
    """Highest quality whose stream fits ``bpp`` bits per pixel."""

    bpp: float

    def __post_init__(self) -> None:
        if not 0.0 < self.bpp <= 24.0:
            raise ValueError(f"bpp {self.bpp}: expected > 0 and <= 24")

    @property
    def settings(self) -> str:
        return f"bpp={self.bpp:.6g}"

    def encode(self, codec: Codec, img: np.ndarray) -> bytes:
        return codec.encode_to_budget(img, bpp=self.bpp)


@dataclass(frozen=True, slots=True)
class ByteBudget:
    """Highest quality whose stream fits ``max_bytes`` per image."""

    max_bytes: int

    def __post_init__(self) -> None:
        if self.max_bytes < 32:
            raise ValueError(f"max_bytes {self.max_bytes}: expected >= 32 (header and z)")

    @property
    def settings(self) -> str:
        return f"max_bytes={self.max_bytes}"

    def encode(self, codec: Codec, img: np.ndarray) -> bytes:
        return codec.encode_to_budget(img, max_bytes=self.max_bytes)


RatePolicy = FixedRate | FixedBpp | ByteBudget


@dataclass(frozen=True, slots=True)
class Encoded:
    path: Path
    data: bytes
    width: int
    height: int
    encode_s: float  # 0.0 for a cache hit or a pre-encoded `.tbx`
    cached: bool

    @property
    def bpp(self) -> float:
        return 8 * len(self.data) / (self.width * self.height)


def load_image(path: str | Path) -> np.ndarray:
    """An image file as HxWx3 uint8. Raises: ValueError naming a file PIL cannot read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None


def _default_codec() -> Codec:
    from textboost import Codec

    return Codec.load()


class EncodePipeline:
    """Files to `.tbx` bytes. ``.tbx`` inputs pass through (checked, not re-encoded).

    Args:
        policy: the rate policy.
        cache: an :class:`EncodeCache`, or None to always encode.
        codec_factory: builds the codec on first use (default ``Codec.load``).
    """

    def __init__(
        self,
        policy: RatePolicy,
        cache: EncodeCache | None = None,
        codec_factory: Callable[[], Any] = _default_codec,
    ) -> None:
        self.policy = policy
        self.cache = cache
        self._codec_factory = codec_factory
        self._codec: Codec | None = None

    @property
    def codec(self) -> Codec:
        if self._codec is None:
            self._codec = self._codec_factory()
        return self._codec

    def encode(self, path: str | Path) -> Encoded:
        """Raises: ValueError naming the file if it is neither an image nor a valid `.tbx`."""
        path = Path(path)
        if path.suffix.lower() == ".tbx":
            data = path.read_bytes()
            try:
                h = Container.parse(data).header
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
            return Encoded(path, data, h.width, h.height, 0.0, cached=False)
        sha = file_sha256(path) if self.cache is not None else ""
        model_id = self.codec.model_id
        if self.cache is not None:
            data = self.cache.get(sha, self.policy.settings, model_id)
            if data is not None:
                h = Container.parse(data).header
                return Encoded(path, data, h.width, h.height, 0.0, cached=True)
        img = load_image(path)
        t0 = time.perf_counter()
        try:
            data = self.policy.encode(self.codec, img)
        except ValueError as exc:  # e.g. BudgetError: name the image
            raise type(exc)(f"{path}: {exc}") from exc
        encode_s = time.perf_counter() - t0
        if self.cache is not None:
            self.cache.put(sha, self.policy.settings, model_id, data)
        return Encoded(path, data, img.shape[1], img.shape[0], encode_s, cached=False)
