"""Encode pipeline: image file -> `.tbx` bytes under a rate policy, through the cache.

The codec (and with it torch or an ONNX runtime) is loaded lazily on the first encode
that misses the cache, never at import: the edge node must start without torch. A cache
hit needs only the model id, which :class:`~textboost.pipeline.loader.PipelineLoader` reads from
the model file.

The text path (words spotted and carried in the `.tbx` text section) is on by default;
``text=False`` leaves it out. The cache key is :attr:`EncodePipeline.settings`: the rate
policy's settings plus the text setting (and, with text on, the sender's filter
thresholds), so a stream without words is never served for a request with words.

Capture metadata (:mod:`textboost.capture`: the image's EXIF, its sidecar ``IMAGE.json``,
or the record handed to :meth:`EncodePipeline.encode`) goes into each header; the packed
record is part of the cache key, so a changed sidecar never serves a stale header.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textboost.bitstream.capture import CaptureMeta
from textboost.bitstream.container import Container
from textboost.capture import capture_for, with_name
from textboost.codec.image import load_image
from textboost.codec.rate import ByteBudget, FixedBpp, FixedRate, RatePolicy, bpp_of
from textboost.pipeline.loader import PipelineLoader
from uplink.cache import EncodeCache, file_sha256

if TYPE_CHECKING:
    from textboost.pipeline.api import Pipeline

__all__ = [
    "ByteBudget",
    "EncodePipeline",
    "Encoded",
    "FixedBpp",
    "FixedRate",
    "RatePolicy",
    "text_settings",
]


def text_settings(text: bool) -> str:
    """The text part of an encode cache key: ``text=off``, or ``text=on`` with a digest of
    the default :class:`~textboost.text.filter.TextFilter` thresholds (what the shipped
    codec's sender keeps) and the text section's payload version, so changing either never
    serves stale words."""
    if not text:
        return "text=off"
    from textboost.text.filter import TextFilter
    from textboost.text.payload import VERSION

    flt = json.dumps({**TextFilter().to_dict(), "payload": VERSION}, sort_keys=True)
    return f"text=on/{hashlib.sha256(flt.encode()).hexdigest()[:8]}"


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
        return bpp_of(len(self.data), self.width, self.height)


class EncodePipeline:
    """Files to `.tbx` bytes. ``.tbx`` inputs pass through (checked, not re-encoded).

    Args:
        policy: the rate policy.
        cache: an :class:`EncodeCache`, or None to always encode.
        codec_factory: a :class:`PipelineLoader` (default: the shipped model), or any callable
            that builds the codec; only a loader knows the model id without loading it, so
            only with a loader does a cache hit leave the codec unloaded.
        text: spot words and carry them in the text section (default); False: none.
        meta: read each image's capture metadata from its EXIF and sidecar JSON
            (default); False: send none unless :meth:`encode` is handed a record.
        name: with ``meta``, carry the image file's name in the record (default; at most
            32 bytes of UTF-8, counted in the budget with the header); False: none.
        restore: with ``text``, which words the ground's word block may draw: ``all``
            (default), or ``closer``: each word only as far as the block brings it closer
            to this image (:meth:`Pipeline.choose_restored`; the sender then loads the word
            block, and decodes each stream once more).
    """

    def __init__(
        self,
        policy: RatePolicy,
        cache: EncodeCache | None = None,
        codec_factory: PipelineLoader | Callable[[], Any] | None = None,
        *,
        text: bool = True,
        meta: bool = True,
        name: bool = True,
        restore: str = "all",
    ) -> None:
        if restore not in ("all", "closer"):
            raise ValueError(f"restore {restore!r}: expected 'all' or 'closer'")
        self.policy = policy
        self.cache = cache
        self.text = text
        self.meta = meta
        self.name = name
        self.restore = restore if text else "all"
        self.settings = f"{policy.settings};{text_settings(text)}"  # the cache key
        if self.restore != "all":
            self.settings += f";restore={self.restore}"
        if codec_factory is None:
            codec_factory = PipelineLoader()
        elif not isinstance(codec_factory, PipelineLoader):
            codec_factory = PipelineLoader(factory=codec_factory)
        self.loader = codec_factory

    @property
    def codec(self) -> Pipeline:
        return self.loader()

    def record_and_key(
        self, path: Path, meta: CaptureMeta | None = None
    ) -> tuple[CaptureMeta | None, str]:
        """The capture record an image is sent with and the encode cache's settings key
        for it (the record is part of the stream, so it is part of the key)."""
        if meta is None and self.meta:
            meta = capture_for(path)
        if self.name and self.meta:
            meta = with_name(meta, path)
        settings = self.settings
        if meta is not None:
            settings += f";meta={meta.to_bytes().hex()}"
        return meta, settings

    def encode(self, path: str | Path, meta: CaptureMeta | None = None) -> Encoded:
        """``meta``: the capture record to send (default: the file's EXIF and sidecar,
        when the pipeline reads them).

        Raises: ValueError naming the file if it is neither an image nor a valid `.tbx`,
        or its sidecar JSON is malformed.
        """
        path = Path(path)
        if path.suffix.lower() == ".tbx":
            data = path.read_bytes()
            try:
                h = Container.parse(data).header
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
            return Encoded(path, data, h.width, h.height, 0.0, cached=False)
        meta, settings = self.record_and_key(path, meta)
        sha = ""
        if self.cache is not None:
            sha = file_sha256(path)
            data = self.cache.get(sha, settings, self.loader.model_id)
            if data is not None:
                h = Container.parse(data).header
                return Encoded(path, data, h.width, h.height, 0.0, cached=True)
        img = load_image(path)
        self.policy.check(img.shape[1], img.shape[0], str(path))  # before the codec loads
        t0 = time.perf_counter()
        try:
            data = self.policy.encode(self.codec, img, text=self.text, meta=meta)
            if self.restore == "closer":
                data = self.codec.choose_restored(data, img)
        except ValueError as exc:  # e.g. BudgetError: name the image
            raise type(exc)(f"{path}: {exc}") from exc
        encode_s = time.perf_counter() - t0
        if self.cache is not None:
            self.cache.put(sha, settings, self.loader.model_id, data)
        return Encoded(path, data, img.shape[1], img.shape[0], encode_s, cached=False)
