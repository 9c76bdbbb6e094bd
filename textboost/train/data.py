"""Training images: photo sets loaded once, random crops with flips and scale jitter.

Images live as uint8 tensors on the training device, so a GPU run does its cropping
and resampling there instead of waiting on PIL. Kodak is the test set and is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
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
    """Batches of random crops (B, 3, crop, crop) in [0, 1] from images held in memory.

    Each crop takes a side of crop/s pixels (s uniform in ``scale_range``, never past the
    image) and resamples it to ``crop`` with antialiased bicubic, then flips at random.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        crop: int,
        rng: np.random.Generator,
        scale_range: tuple[float, float] = (0.6, 1.0),
        device: torch.device | str = "cpu",
    ) -> None:
        self.crop = crop
        self.rng = rng
        self.scale_range = scale_range
        self.device = torch.device(device)
        self.images = [self._load(p) for p in paths]

    def _load(self, path: Path) -> torch.Tensor:
        try:
            img = Image.open(path).convert("RGB")
        except OSError as e:
            raise ValueError(f"{path}: cannot read training image: {e}") from e
        if min(img.size) < self.crop:
            s = self.crop / min(img.size)
            img = img.resize(
                (round(img.width * s + 0.5), round(img.height * s + 0.5)), Image.LANCZOS
            )
        return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).to(self.device)

    def _one(self) -> torch.Tensor:
        img = self.images[self.rng.integers(len(self.images))]
        h, w = img.shape[1:]
        lo = max(self.scale_range[0], self.crop / min(h, w))
        s = float(self.rng.uniform(lo, max(lo, self.scale_range[1])))
        side = min(round(self.crop / s), w, h)
        x0 = int(self.rng.integers(0, w - side + 1))
        y0 = int(self.rng.integers(0, h - side + 1))
        patch = img[None, :, y0 : y0 + side, x0 : x0 + side].float()
        if side != self.crop:
            patch = F.interpolate(
                patch, size=(self.crop, self.crop), mode="bicubic", antialias=True,
                align_corners=False,
            ).clamp(0, 255)  # fmt: skip
        if self.rng.random() < 0.5:
            patch = patch.flip(3)
        if self.rng.random() < 0.5:
            patch = patch.flip(2)
        return patch

    def batch(self, size: int) -> torch.Tensor:
        return torch.cat([self._one() for _ in range(size)]) / 255.0
