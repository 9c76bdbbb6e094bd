"""Training images: photo sets loaded once, random crops with flips and scale jitter.

Kodak is the test set and is refused here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["CropSampler", "list_images"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def list_images(dirs: Sequence[str | Path]) -> list[Path]:
    paths: list[Path] = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise FileNotFoundError(f"training data folder {d} does not exist")
        if "kodak" in d.as_posix().lower():
            raise ValueError(f"{d}: Kodak is the test set, never train on it")
        paths += sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"no images found in {list(map(str, dirs))}")
    return paths


class CropSampler:
    """Batches of random crops (B, 3, crop, crop) in [0, 1] from images held in memory."""

    def __init__(
        self,
        paths: Sequence[Path],
        crop: int,
        rng: np.random.Generator,
        scale_range: tuple[float, float] = (0.6, 1.0),
    ) -> None:
        self.crop = crop
        self.rng = rng
        self.scale_range = scale_range
        self.images = [self._load(p) for p in paths]

    def _load(self, path: Path) -> Image.Image:
        img = Image.open(path).convert("RGB")
        if min(img.size) < self.crop:
            s = self.crop / min(img.size)
            img = img.resize(
                (round(img.width * s + 0.5), round(img.height * s + 0.5)), Image.LANCZOS
            )
        return img

    def _one(self) -> np.ndarray:
        img = self.images[self.rng.integers(len(self.images))]
        lo = max(self.scale_range[0], self.crop / min(img.size))
        s = float(self.rng.uniform(lo, max(lo, self.scale_range[1])))
        side = min(round(self.crop / s), img.width, img.height)
        x0 = int(self.rng.integers(0, img.width - side + 1))
        y0 = int(self.rng.integers(0, img.height - side + 1))
        patch = img.crop((x0, y0, x0 + side, y0 + side))
        if side != self.crop:
            patch = patch.resize((self.crop, self.crop), Image.BICUBIC)
        a = np.asarray(patch)
        if self.rng.random() < 0.5:
            a = a[:, ::-1]
        if self.rng.random() < 0.5:
            a = a[::-1]
        return a

    def batch(self, size: int) -> torch.Tensor:
        a = np.stack([self._one() for _ in range(size)]).astype(np.float32) / 255.0
        return torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()
