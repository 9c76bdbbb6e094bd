"""The ground's one output layout, and its one writer (:class:`GroundStore`).

In ``out_dir``, for every ground receiver (``downlink receive``, ``downlink serve`` and the
simulator when it writes files):

- ``NAME.tbx`` and ``NAME.json`` of each delivered image, written durably (fsync, then
  rename) *before* its FIN is queued; ``NAME`` is the first 16 hex digits of the `.tbx`'s
  SHA-256, so an image the sender resends (new epoch or bundle id, same bytes) has one name;
- ``NAME.png``, its decoded picture, once decoded;
- ``partial/eEPOCH_bBUNDLE.json`` (the words, as soon as the text section lands) and
  ``partial/eEPOCH_bBUNDLE.png`` (a preview from the y groups so far, or the picture of a
  bundle that never completed) while an image is under reassembly or when it never became
  whole; ``partial/eEPOCH_bBUNDLE.tbx`` is an incomplete bundle's in-order prefix.

The hand-off (:mod:`downlink.handoff`), the live page (:mod:`downlink.web`) and replay read
this layout; a reader never sees half a file (every file is written as ``*.tmp`` and
renamed).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from textboost.field.durable import write_durably

__all__ = ["GroundStore", "image_name", "parse_partial_stem", "partial_stem", "stored"]

Key = tuple[int, int]  # (sender epoch, bundle id)


def image_name(sha256: str) -> str:
    """A delivered image's file stem: 16 hex digits of its `.tbx`'s SHA-256."""
    return sha256[:16]


def stored(out_dir: str | Path, data: bytes) -> Path:
    """Where a delivered image of these `.tbx` bytes is in ``out_dir``."""
    return Path(out_dir) / f"{image_name(hashlib.sha256(data).hexdigest())}.tbx"


def partial_stem(key: Key) -> str:
    return f"e{key[0]}_b{key[1]}"


_STEM = re.compile(r"^e(\d+)_b(\d+)$")


def parse_partial_stem(stem: str) -> Key | None:
    """``eEPOCH_bBUNDLE`` back to its key (None: not a partial file's stem)."""
    m = _STEM.match(stem)
    return None if m is None else (int(m[1]), int(m[2]))


class GroundStore:
    """Writes the layout above under ``out_dir`` (created with ``partial/``)."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out = Path(out_dir)
        self.partial = self.out / "partial"
        self.partial.mkdir(parents=True, exist_ok=True)

    def tbx_path(self, name: str) -> Path:
        return self.out / f"{name}.tbx"

    def png_path(self, name: str) -> Path:
        return self.out / f"{name}.png"

    def partial_path(self, key: Key, suffix: str) -> Path:
        return self.partial / f"{partial_stem(key)}{suffix}"

    def write_text(self, key: Key, doc: dict[str, Any]) -> None:
        """The words of a bundle under reassembly (not fsynced: the whole image is)."""
        data = (json.dumps(doc, indent=1) + "\n").encode()
        write_durably(self.partial_path(key, ".json"), data, fsync=False)

    def write_image(self, name: str, data: bytes, record: dict[str, Any]) -> None:
        """A delivered image's `.tbx` and record, on disk when this returns."""
        write_durably(self.tbx_path(name), data)
        write_durably(self.out / f"{name}.json", (json.dumps(record, indent=1) + "\n").encode())

    def write_prefix(self, key: Key, data: bytes) -> Path:
        """The in-order prefix of a bundle that never completed."""
        path = self.partial_path(key, ".tbx")
        write_durably(path, data, fsync=False)
        return path

    @staticmethod
    def write_png(img: np.ndarray, path: Path) -> None:
        """A decoded picture, replaced whole (``*.part.png`` then rename)."""
        from PIL import Image

        tmp = path.with_name(path.name + ".part.png")
        Image.fromarray(img).save(tmp)
        tmp.replace(path)

    def drop_partial(self, key: Key) -> None:
        """The bundle is delivered (its files are ``NAME.*``) or given up for a resend."""
        for suffix in (".json", ".png", ".tbx", ".png.part.png"):  # the last: a cut preview
            self.partial_path(key, suffix).unlink(missing_ok=True)
