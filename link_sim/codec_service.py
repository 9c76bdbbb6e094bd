"""Encoding and decoding for the simulator, cached on disk.

A mission plays with a handful of images many times, so every encode is kept under a key
of (image bytes, rate settings, model id) and every decode under (bitstream bytes): a
second run of a scenario, a Monte Carlo repetition or a sweep point only simulates the
link. Cached results are the bytes the real codec wrote, never estimates.

``synthetic=True`` replaces the codec by :func:`link_sim.payloads.synthetic_container`
(random payloads of the requested size in a real `.tbx`): for studying the link alone.
It is never chosen silently; reports say which one ran and give no quality figures for
synthetic payloads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from link_sim.payloads import SYNTHETIC_MODEL_ID, synthetic_container
from textboost.codec.container import Container

__all__ = ["CodecService", "Decoded", "load_rgb", "psnr_db"]


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


@dataclass(frozen=True, slots=True)
class Decoded:
    psnr_db: float
    image_path: Path  # the decoded image, PNG, in the cache


class CodecService:
    """``encode(path, bpp=...|max_bytes=...)`` → `.tbx` bytes; ``decode(path, data)`` →
    :class:`Decoded` (PSNR against the original)."""

    def __init__(self, cache_dir: Path, *, synthetic: bool = False) -> None:
        self.cache_dir = Path(cache_dir)
        self.synthetic = synthetic
        self.encodes = 0  # cache misses, for the benchmark
        self.decodes = 0
        self._image_keys: dict[Path, str] = {}
        self._sizes: dict[Path, tuple[int, int]] = {}

    @cached_property
    def _codec(self):
        from textboost import Codec  # torch-free import is the codec's business

        return Codec.load()

    @property
    def model_id(self) -> bytes:
        return SYNTHETIC_MODEL_ID if self.synthetic else self._codec.model_id

    @property
    def name(self) -> str:
        if self.synthetic:
            return "synthetic .tbx payloads (no codec: no quality figures)"
        return f"textboost Codec, model {self.model_id.hex()}"

    def image_key(self, path: Path) -> str:
        if path not in self._image_keys:
            self._image_keys[path] = hashlib.sha256(path.read_bytes()).hexdigest()[:24]
        return self._image_keys[path]

    def image_size(self, path: Path) -> tuple[int, int]:
        """(width, height) without decoding the whole file."""
        if path not in self._sizes:
            with Image.open(path) as im:
                self._sizes[path] = im.size
        return self._sizes[path]

    def encode(
        self, path: Path, *, bpp: float | None = None, max_bytes: int | None = None
    ) -> bytes:
        if (bpp is None) == (max_bytes is None):
            raise ValueError("encode needs exactly one of bpp or max_bytes")
        setting = f"bpp{bpp:.5f}" if bpp is not None else f"max{max_bytes}"
        key = f"{self.image_key(path)}-{setting}-{self.model_id.hex()}"
        file = self.cache_dir / "encoded" / f"{key}.tbx"
        if file.is_file():
            return file.read_bytes()
        self.encodes += 1
        if self.synthetic:
            w, h = self.image_size(path)
            n = max_bytes if max_bytes is not None else int(bpp * w * h / 8)
            data = synthetic_container(key.encode(), w, h, n)
        elif bpp is not None:
            data = self._codec.encode_to_budget(load_rgb(path), bpp=bpp)
        else:
            data = self._codec.encode_to_budget(load_rgb(path), max_bytes=max_bytes)
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(file)  # atomic: parallel sweep workers may race on one key
        return data

    def decode(self, path: Path, data: bytes) -> Decoded | None:
        """Decode what arrived and compare with the original; None for synthetic payloads."""
        if self.synthetic:
            return None
        key = hashlib.sha256(data).hexdigest()[:24]
        meta = self.cache_dir / "decoded" / f"{key}-{self.image_key(path)}.json"
        png = meta.with_suffix(".png")
        if meta.is_file() and png.is_file():
            return Decoded(json.loads(meta.read_text())["psnr_db"], png)
        self.decodes += 1
        container = Container.parse(data, model_id=self.model_id)
        out = self._codec.decode(container.to_bytes())
        value = psnr_db(load_rgb(path), out)
        meta.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(out).save(png.with_suffix(".tmp.png"))
        png.with_suffix(".tmp.png").replace(png)
        meta.write_text(json.dumps({"psnr_db": value, "groups": len(container.groups)}))
        return Decoded(value, png)
