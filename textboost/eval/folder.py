"""The codec over a folder of images: bytes, bpp, PSNR and MS-SSIM per image and their
means (``python -m textboost eval DIR``), as CompressAI's ``eval_model`` reports them.

Every image is checked (readable, within the size limit, large enough for the budget)
before the first one is encoded, so a bad file fails in one line, not after minutes.
Each image is encoded to real bytes and decoded as the receiver would (the fusion block
when the codec has it); figures come from :func:`textboost.eval.metrics.quality`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from textboost.bitstream.container import Container
from textboost.codec.image import check_size, load_image
from textboost.codec.rate import FixedBpp, FixedRate, RatePolicy, bpp_of
from textboost.eval.metrics import quality

__all__ = ["IMAGE_SUFFIXES", "check_images", "evaluate_image", "folder_images", "summarise"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def folder_images(folder: str | Path) -> list[Path]:
    """The images of a folder (by suffix, sorted by name).

    Raises: FileNotFoundError (no such folder), ValueError (no images in it)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return paths


def check_images(paths: list[Path], policy: RatePolicy) -> None:
    """Raises ValueError naming the first file that is unreadable, too large, or too small
    for the policy's budget; reads only the files' headers."""
    for path in paths:
        try:
            with Image.open(path) as im:
                w, h = im.size
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"{path}: not a readable image ({e})") from None
        try:
            check_size(w, h)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        policy.check(w, h, str(path))


def evaluate_image(
    codec, path: Path, policy: RatePolicy, text: bool = True, progress: Callable | None = None
) -> dict[str, Any]:
    """One image: encoded under ``policy`` (``progress`` sees the budget search), decoded,
    scored."""
    img = load_image(path)
    h, w = img.shape[:2]
    t0 = time.perf_counter()
    if isinstance(policy, FixedRate):
        data = codec.encode(img, rate=policy.rate, text=text)
    elif isinstance(policy, FixedBpp):
        data = codec.encode_to_budget(img, bpp=policy.bpp, text=text, progress=progress)
    else:
        data = codec.encode_to_budget(
            img, max_bytes=policy.max_bytes, text=text, progress=progress
        )
    t1 = time.perf_counter()
    out = codec.decode(data)
    t2 = time.perf_counter()
    c = Container.parse(data)
    return {
        "image": path.name,
        "width": w,
        "height": h,
        "bytes": len(data),
        "bpp": bpp_of(len(data), w, h),
        "text_bytes": len(c.text),
        "coded_width": c.header.coded_size[0],
        "coded_height": c.header.coded_size[1],
        **quality(img, out),
        "encode_s": t1 - t0,
        "decode_s": t2 - t1,
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over the images (MS-SSIM over those that have it)."""

    def mean(key: str) -> float | None:
        vals = [r[key] for r in rows if r.get(key) is not None]
        return float(np.mean(vals)) if vals else None

    return {
        "images": len(rows),
        "bytes_mean": mean("bytes"),
        "bpp_mean": mean("bpp"),
        "psnr_db_mean": mean("psnr_db"),
        "ms_ssim_mean": mean("ms_ssim"),
        "ms_ssim_images": sum(r.get("ms_ssim") is not None for r in rows),
        "encode_s_mean": mean("encode_s"),
        "decode_s_mean": mean("decode_s"),
    }
