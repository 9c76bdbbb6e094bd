"""Pictures for operator pages: thumbnails and word crops as inline data URIs, so a page
holds them without extra files or fetches (full-size images are linked, not inlined)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from textboost.codec.image import load_image
from textboost.web.components import TextCrop

__all__ = ["CROP_PX", "data_uri", "text_crops", "thumbnail"]

CROP_PX = 56  # crop height in pixels: twice the 28 CSS px it is shown at (sharp on HiDPI)
_PAD = 0.25  # of the word's height, on each side


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _as_array(image: np.ndarray | str | Path) -> np.ndarray:
    return image if isinstance(image, np.ndarray) else load_image(image)


def thumbnail(image: np.ndarray | str | Path, px: int = 480, quality: int = 85) -> str:
    """A JPEG data URI at most ``px`` on its longer side."""
    im = Image.fromarray(_as_array(image))
    im.thumbnail((px, px), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return data_uri(buf.getvalue(), "image/jpeg")


def _crop(img: np.ndarray, box: tuple[float, float, float, float]) -> str | None:
    """The box as a JPEG data URI; None for a box outside the image (shown as a dash)."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = box
    x0, y0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    x1, y1 = min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
    if x1 <= x0 or y1 <= y0:
        return None
    im = Image.fromarray(img[y0:y1, x0:x1])
    scale = CROP_PX / im.height
    im = im.resize((max(1, min(12 * CROP_PX, round(im.width * scale))), CROP_PX),
                   Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=88)  # a PNG of a photo crop is 4x the bytes
    return data_uri(buf.getvalue(), "image/jpeg")


def text_crops(
    words: Sequence[dict[str, Any]],
    original: np.ndarray | str | Path | None,
    decoded: np.ndarray | str | Path | None,
    limit: int = 12,
) -> list[TextCrop]:
    """Per word (``{"text", "quad"}`` as the receiver's JSON has them, quad in the original's
    pixels): the padded box around it in the original and in the decoded image. A decoded
    image of another size (a coarser scale) is cropped at the scaled box."""
    orig = None if original is None else _as_array(original)
    dec = None if decoded is None else _as_array(decoded)
    ref = orig if orig is not None else dec
    out = []
    for w in words[:limit]:
        q = np.asarray(w["quad"], dtype=float).reshape(-1, 2)
        x0, y0 = q.min(axis=0)
        x1, y1 = q.max(axis=0)
        pad = _PAD * (y1 - y0)
        box = (x0 - pad, y0 - pad, x1 + pad, y1 + pad)
        crops: list[str | None] = []
        for img in (orig, dec):
            if img is None or ref is None:
                crops.append(None)
                continue
            sy, sx = img.shape[0] / ref.shape[0], img.shape[1] / ref.shape[1]
            crops.append(_crop(img, (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)))
        out.append(TextCrop(str(w["text"]), crops[0], crops[1]))
    return out
