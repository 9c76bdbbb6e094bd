"""Standard image codecs used as baselines, each encoding at an integer quality to real bytes.

Every codec writes its ordinary file format (JFIF, RIFF/WebP, AVIF and HEIF in ISOBMFF, a
bare JPEG XL codestream), so container overhead counts in the bytes. Plugins for HEIF and
JPEG XL are registered when their codec is first built, not at import.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "BASELINE_NAMES",
    "BaselineCodec",
    "CodecUnavailableError",
    "get_baseline",
    "to_pil",
]

# libaom speed for AVIF: 4 is the setting the project's AVIF figures are quoted at.
AVIF_SPEED = 4
WEBP_METHOD = 6
JXL_EFFORT = 7


class CodecUnavailableError(RuntimeError):
    """A baseline codec's encoder is not installed; the message says which package."""


@dataclass(frozen=True)
class BaselineCodec:
    """One codec at one fixed setting, searched over an integer quality range.

    Larger quality means more bytes (the budget search assumes it and counts violations).
    """

    name: str
    label: str
    quality_min: int
    quality_max: int
    settings: dict[str, Any]
    _encode: Callable[[Image.Image, int], bytes] = field(repr=False)

    def encode(self, img: Image.Image, quality: int) -> bytes:
        if not self.quality_min <= quality <= self.quality_max:
            raise ValueError(
                f"{self.name}: quality {quality} outside [{self.quality_min}, {self.quality_max}]"
            )
        return self._encode(img, quality)

    def decode(self, data: bytes) -> Image.Image:
        with Image.open(io.BytesIO(data)) as im:
            return im.convert("RGB")


def _pil_encoder(fmt: str, **options: Any) -> Callable[[Image.Image, int], bytes]:
    def encode(img: Image.Image, quality: int) -> bytes:
        buf = io.BytesIO()
        img.save(buf, fmt, quality=quality, **options)
        return buf.getvalue()

    return encode


def _jpeg() -> BaselineCodec:
    opts = {"optimize": True, "subsampling": "4:2:0", "progressive": False}
    return BaselineCodec(
        "jpeg",
        "JPEG (libjpeg-turbo)",
        1,
        100,
        {"library": "Pillow/libjpeg-turbo", **opts},
        _pil_encoder("JPEG", **opts),
    )


def _webp() -> BaselineCodec:
    opts = {"method": WEBP_METHOD}
    return BaselineCodec(
        "webp",
        "WebP (libwebp)",
        0,
        100,
        {"library": "Pillow/libwebp", "lossy": True, **opts},
        _pil_encoder("WEBP", **opts),
    )


def _avif() -> BaselineCodec:
    from PIL import _avif, features

    if not features.check("avif") or not _avif.encoder_codec_available("aom"):
        raise CodecUnavailableError("avif: this Pillow build has no AVIF encoder with libaom")
    opts = {"codec": "aom", "speed": AVIF_SPEED, "subsampling": "4:2:0", "max_threads": 1}
    return BaselineCodec(
        "avif",
        "AVIF (libaom)",
        0,
        100,
        {"library": "Pillow/libavif", **opts},
        _pil_encoder("AVIF", **opts),
    )


def _heif() -> BaselineCodec:
    try:
        pillow_heif = importlib.import_module("pillow_heif")
    except ImportError as exc:
        raise CodecUnavailableError("heif: pip install pillow-heif") from exc
    if "x265" not in pillow_heif.libheif_info().get("encoders", {}):
        raise CodecUnavailableError("heif: pillow-heif was built without the x265 encoder")
    pillow_heif.register_heif_opener()
    opts = {"chroma": 420}
    return BaselineCodec(
        "heif",
        "HEIF (x265)",
        0,
        100,
        {"library": "pillow-heif/libheif/x265", "x265_preset": "libheif default", **opts},
        _pil_encoder("HEIF", **opts),
    )


def _jxl() -> BaselineCodec:
    try:
        importlib.import_module("pillow_jxl")  # registers the JXL plugin with Pillow
    except ImportError as exc:
        raise CodecUnavailableError("jxl: pip install pillow-jxl-plugin") from exc
    opts = {"effort": JXL_EFFORT, "use_container": False, "num_threads": 1}
    return BaselineCodec(
        "jxl",
        "JPEG XL (libjxl)",
        0,
        99,
        {"library": "pillow-jxl-plugin/libjxl", "lossless": False, **opts},
        _pil_encoder("JXL", **opts),
    )


_FACTORIES: dict[str, Callable[[], BaselineCodec]] = {
    "jpeg": _jpeg,
    "webp": _webp,
    "avif": _avif,
    "heif": _heif,
    "jxl": _jxl,
}
BASELINE_NAMES: tuple[str, ...] = tuple(_FACTORIES)
_CACHE: dict[str, BaselineCodec] = {}


def get_baseline(name: str) -> BaselineCodec:
    """The baseline codec called `name`; raises CodecUnavailableError if not installed."""
    if name not in _FACTORIES:
        raise ValueError(f'unknown baseline codec "{name}": expected one of {BASELINE_NAMES}')
    if name not in _CACHE:
        _CACHE[name] = _FACTORIES[name]()
    return _CACHE[name]


def to_pil(img: np.ndarray) -> Image.Image:
    """HxWx3 uint8 array → RGB PIL image (no metadata, so none is written)."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 image, got {img.dtype} {img.shape}")
    return Image.fromarray(img, "RGB")
