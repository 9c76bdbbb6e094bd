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

Text: encodes carry the spotted words unless asked not to (the text setting is part of the
encode key). Decodes fuse the words into the image when the fusion block ships beside the
model, and the decode cache key names the fusion weights, so shipping or retraining them
never serves stale pixels. :meth:`CodecService.text_reads` runs the spotter once per decoded
image (cached on disk under ``text/``) for the DET/E2E scores of the report.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from link_sim.payloads import SYNTHETIC_MODEL_ID, synthetic_container
from textboost.codec.image import load_image, psnr_db
from textboost.codec.rate import RatePolicy, budget_bytes
from textboost.codec.weights import DEFAULT_MODEL, fusion_path
from textboost.pipeline.loader import PipelineLoader
from textboost.pipeline.parsed import Parsed
from textboost.text.words import Word
from textboost.user_cache import cache_root
from uplink.cache import EncodeCache, file_sha256
from uplink.encode import EncodePipeline

__all__ = ["CachedDecoder", "CodecService", "SyntheticCodec", "default_cache_dir"]

SYNTHETIC_WORD = "SYNTHETIC"  # the one word a synthetic text section carries


def default_cache_dir() -> Path:
    """The simulator's encode/decode cache unless ``--cache`` says otherwise: ``link_sim/``
    under the user's cache folder (:func:`textboost.user_cache.cache_root`, XDG)."""
    return cache_root() / "link_sim"


class SyntheticCodec:
    """Writes `.tbx` containers of the requested size with random payloads; cannot decode."""

    model_id = SYNTHETIC_MODEL_ID
    RATE_BPP = (0.01, 0.15)  # the design's rate range, for ``encode(rate=...)``

    def encode(
        self, img: np.ndarray, rate: float = 0.5, text: bool = True, meta: object | None = None
    ) -> bytes:
        lo, hi = self.RATE_BPP
        return self.encode_to_budget(img, bpp=lo + rate * (hi - lo), text=text)

    def encode_to_budget(
        self,
        img: np.ndarray,
        *,
        bpp: float | None = None,
        max_bytes: int | None = None,
        text: bool = True,
        meta: object | None = None,
    ) -> bytes:
        """With ``text``, a real text section carrying one placeholder word
        (:data:`SYNTHETIC_WORD`), so the link carries and times a text section. ``meta``
        (the rate policies pass the capture record through) is not written: synthetic
        payloads are sized by the budget alone."""
        h, w = img.shape[:2]
        n = max_bytes if max_bytes is not None else budget_bytes(bpp or 0.0, w, h)
        key = hashlib.sha256(img.tobytes()).digest() + str(n).encode()
        section = b""
        if text:
            from textboost.text.payload import encode_words

            quad = np.array([[0.4, 0.45], [0.6, 0.45], [0.6, 0.5], [0.4, 0.5]]) * (w, h)
            section = encode_words([Word(quad, SYNTHETIC_WORD)], w, h)
        return synthetic_container(key, w, h, n, text=section)


class CachedDecoder:
    """``decode(data)`` as the codec's, answered from memory or disk when seen before
    (the codec is loaded on the first miss). The key is the stream's bytes (a
    :class:`Parsed` stream's too: its container and words go to the codec on a miss) and
    ``tag``, what else the pixels depend on (the fusion weights)."""

    def __init__(self, loader: PipelineLoader, cache_dir: Path, tag: str = "") -> None:
        self.loader = loader
        self.cache_dir = cache_dir
        self.tag = tag
        self.misses = 0
        self._memory: dict[str, np.ndarray] = {}

    def _key(self, data: bytes) -> str:
        return hashlib.sha256(data + self.tag.encode()).hexdigest()

    def path_of(self, data: bytes) -> Path:
        key = self._key(data)
        return self.cache_dir / key[:2] / f"{key}.png"

    def decode(
        self, stream: bytes | Parsed, groups: int | None = None, fusion: bool | None = None
    ) -> np.ndarray:
        if groups is not None:
            raise ValueError("CachedDecoder decodes what arrived; pass a truncated container")
        if fusion is not None:
            raise ValueError("CachedDecoder decodes as its codec does (fusion when shipped)")
        data = stream.data if isinstance(stream, Parsed) else stream
        key = self._key(data)
        if key in self._memory:
            return self._memory[key]
        path = self.path_of(data)
        if path.is_file():
            img = load_image(path)
        else:
            self.misses += 1
            img = np.asarray(self.loader().decode(stream), dtype=np.uint8)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{id(self)}.part.png")
            Image.fromarray(img).save(tmp)
            tmp.replace(path)  # atomic: parallel sweep workers may race on one key
        self._memory[key] = img
        return img


class CodecService:
    """Encodes files under a rate setting, decodes bytes, loads originals: each once."""

    def __init__(
        self, cache_dir: Path, *, synthetic: bool = False, model: Path | None = None
    ) -> None:
        """``model``: a model file (None: the shipped default); its fusion weights, if any,
        lie beside it (:func:`textboost.codec.weights.fusion_path`)."""
        self.cache_dir = Path(cache_dir)
        self.synthetic = synthetic
        self._encode_cache = EncodeCache(self.cache_dir / "encoded")
        self._encoded: dict[tuple[Path, str], bytes] = {}
        self._references: dict[Path, np.ndarray] = {}
        self._quality: dict[tuple[Path, bytes], float] = {}
        self._sizes: dict[Path, tuple[int, int]] = {}
        self._reads: dict[tuple[str, str], list[Word]] = {}
        self._gt: dict[Path, Any] = {}
        self.encodes = 0  # encoder runs (cache misses), for the summary and the benchmark
        self.spots = 0  # spotter runs on decoded images (cache misses)
        # told what the codec is about to do ("encoding a.png"), for a progress display
        self.activity: Callable[[str], None] | None = None
        self.loader = (
            PipelineLoader(factory=SyntheticCodec, model_id=SYNTHETIC_MODEL_ID)
            if synthetic
            else PipelineLoader(model)
        )

    @contextlib.contextmanager
    def _doing(self, what: str) -> Iterator[None]:
        """Tell ``activity`` what runs now, and that it is over."""
        if self.activity is not None:
            self.activity(what)
        try:
            yield
        finally:
            if self.activity is not None:
                self.activity("")

    @property
    def codec(self) -> Any:
        """The codec (loaded on first use)."""
        return self.loader()

    @cached_property
    def decoder(self) -> CachedDecoder | None:
        """None for synthetic payloads (nothing can decode them)."""
        if self.synthetic:
            return None
        return CachedDecoder(self.loader, self.cache_dir / "decoded", self.fusion_tag)

    @cached_property
    def fusion_tag(self) -> str:
        """``fusion=<digest of the weights>`` when the fusion block ships beside the model
        (the codec then fuses at decode), else ``fusion=none``."""
        path = fusion_path(self.loader.model or DEFAULT_MODEL)
        return f"fusion={file_sha256(path)[:16]}" if path.is_file() else "fusion=none"

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
        return f"textboost Codec, model {self.model_id.hex()}, {self.fusion_tag}"

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
            with self._doing(f"decoding {path.name}"):
                img = self.decoder.decode(data)
            self._quality[key] = psnr_db(self.reference(path), img)
        return self._quality[key], self.decoder.path_of(data)

    def encode(
        self, path: Path, policy: RatePolicy, text: bool = True, name: bool = True
    ) -> bytes:
        """``text``: spot and carry words (False: no text section); ``name``: the file's
        name in the capture record (the field's ``uplink.send_name``).

        Raises: ``textboost.codec.api.BudgetError`` when no stream fits the budget."""
        pipe = EncodePipeline(policy, self._encode_cache, self.loader, text=text, name=name)
        key = (path, pipe.settings, name)
        if key not in self._encoded:
            with self._doing(f"encoding {path.name}"):
                enc = pipe.encode(path)
            self.encodes += not enc.cached
            self._encoded[key] = enc.data
        return self._encoded[key]

    def ground_truth(self, original: Path):
        """The ICDAR 2015 ground truth beside an original (``gt_<stem>.txt``), or None."""
        if original not in self._gt:
            from textboost.scenetext.gt import read_gt

            self._gt[original] = read_gt(original)
        return self._gt[original]

    def text_match(
        self, original: Path, words: list[Word]
    ) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
        """DET and E2E counts (tp, n_gt, n_det) of ``words`` against the ground truth of
        ``original`` (None without one), by ``textboost.scenetext.match.match_image``
        (ICDAR 2015 protocol)."""
        gt = self.ground_truth(original)
        if gt is None:
            return None
        from textboost.scenetext.match import match_image

        m = match_image(gt.words, words, ignore_unannotated=gt.kind == "plate")
        return (m.det.tp, m.det.n_gt, m.det.n_det), (m.e2e.tp, m.e2e.n_gt, m.e2e.n_det)

    @cached_property
    def spotter_settings(self) -> str:
        """What the spotter's reads depend on (the cache key of :meth:`reads`)."""
        try:
            version = importlib.metadata.version("rapidocr-onnxruntime")
        except importlib.metadata.PackageNotFoundError:
            version = "?"
        return f"rapidocr-onnxruntime={version};default_spotter"

    def reads(self, image_file: Path) -> list[Word]:
        """What the spotter (``textboost.text.spotter.default_spotter``, unfiltered) reads
        on an image file: a decoded image or an original. Run once per file content (about
        0.4 s for 768x512 on two cores) and cached on disk under ``text/``."""
        key = hashlib.sha256(
            f"{file_sha256(image_file)}|{self.spotter_settings}".encode()
        ).hexdigest()
        tag = (key, self.spotter_settings)
        if tag in self._reads:
            return self._reads[tag]
        path = self.cache_dir / "text" / key[:2] / f"{key}.json"
        try:
            words = [Word(np.asarray(w["quad"]), w["text"], w["score"])
                     for w in json.loads(path.read_text())]
        except (OSError, ValueError, KeyError, TypeError):
            from textboost.text.spotter import default_spotter

            self.spots += 1
            with self._doing(f"reading text on {image_file.name}"):
                words = default_spotter().spot(load_image(image_file))
            doc = [{"text": w.text, "quad": w.quad.tolist(), "score": w.score} for w in words]
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{id(self)}.part")
            tmp.write_text(json.dumps(doc))
            tmp.replace(path)  # atomic: parallel sweep workers may race on one key
        self._reads[tag] = words
        return words
