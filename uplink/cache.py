"""Encode cache: `.tbx` files keyed by (image file SHA-256, encode settings, model id).

Repeated simulator runs over the same images and settings reuse the bytes instead of
re-running the encoder. Entries are plain files written atomically (temp file + rename),
so concurrent runs and interrupted writes never leave a half entry; a corrupt entry (one
that no longer parses) is treated as a miss and overwritten.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from textboost.bitstream.container import BitstreamError, Container

__all__ = ["EncodeCache", "file_sha256"]


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class EncodeCache:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0

    def _path(self, image_sha256: str, settings: str, model_id: bytes) -> Path:
        key = hashlib.sha256(f"{image_sha256}|{settings}|{model_id.hex()}".encode()).hexdigest()
        return self.directory / key[:2] / f"{key}.tbx"

    def get(self, image_sha256: str, settings: str, model_id: bytes) -> bytes | None:
        """The cached stream, or None (a missing or unreadable entry is a miss)."""
        path = self._path(image_sha256, settings, model_id)
        try:
            data = path.read_bytes()
            Container.parse(data, model_id=model_id)
        except (FileNotFoundError, BitstreamError):
            self.misses += 1
            return None
        self.hits += 1
        return data

    def put(self, image_sha256: str, settings: str, model_id: bytes, data: bytes) -> Path:
        path = self._path(image_sha256, settings, model_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
