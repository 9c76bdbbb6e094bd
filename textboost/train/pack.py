"""Pack training photo sets into a size cap, so they can travel with the repository.

A GPU machine receives only the working tree (64 MiB in all), while the photo sets in
``../shared/data/photos`` are larger (BSDS500, Sun–Hays 80 and Urban100 are ≈ 80 MB).
Each image is re-encoded as 4:4:4 JPEG; the quality falls from ``QUALITIES[0]`` until the
whole pack fits, and images whose short side exceeds ``max_side`` are first resized with
Lanczos (training crops take 256² windows at 0.6–1.0 scale, so little is lost).
Kodak is refused, as in training.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from textboost.train.data import list_images

__all__ = ["QUALITIES", "pack_images"]

QUALITIES = (95, 92, 90, 87, 85, 82, 80)


def _encode(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, subsampling=0, optimize=True)
    return buf.getvalue()


def _load(path: Path, max_side: int) -> Image.Image:
    try:
        img = Image.open(path).convert("RGB")
    except OSError as e:
        raise ValueError(f"{path}: cannot read training image: {e}") from e
    short = min(img.size)
    if short > max_side:
        s = max_side / short
        img = img.resize((round(img.width * s), round(img.height * s)), Image.LANCZOS)
    return img


def pack_images(
    dirs: Sequence[str | Path], out: str | Path, max_mib: float, max_side: int = 512
) -> dict:
    """Write ``out/<set>/<name>.jpg`` for every image of ``dirs``; returns a summary."""
    out = Path(out)
    sets = [(Path(d).name, list_images([d])) for d in dirs]
    names = [n for n, _ in sets]
    if len(set(names)) != len(names):
        raise ValueError(f"two data folders share a name: {names}")
    images = [(name, p, _load(p, max_side)) for name, paths in sets for p in paths]
    cap = int(max_mib * 2**20)
    for q in QUALITIES:
        blobs = [(name, p, _encode(img, q)) for name, p, img in images]
        total = sum(len(b) for *_, b in blobs)
        if total <= cap:
            break
    else:
        raise ValueError(
            f"{len(images)} images need {total / 2**20:.1f} MiB at JPEG quality {QUALITIES[-1]}, "
            f"over --max-mib {max_mib}: lower --max-side ({max_side})"
        )
    dsts = [out / name / (p.stem + ".jpg") for name, p, _ in blobs]
    if len(set(dsts)) != len(dsts):
        raise ValueError("two images of one set share a file stem; rename one")
    for (_, _, blob), dst in zip(blobs, dsts, strict=True):
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(blob)
    return {"images": len(blobs), "mib": total / 2**20, "quality": q, "max_side": max_side}
