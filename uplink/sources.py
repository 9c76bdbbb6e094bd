"""Image sources: what the edge device captured, and when."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

__all__ = ["IMAGE_SUFFIXES", "Capture", "FolderSource", "PathListSource"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".tbx")


@dataclass(frozen=True, slots=True)
class Capture:
    """One captured image: a file (an image, or an already encoded `.tbx`) and its time."""

    path: Path
    capture_s: float
    priority: int = 0  # higher = more important (kept longer when storage is full)

    @property
    def image_id(self) -> str:
        return self.path.name


class PathListSource:
    """Explicit paths with capture times (seconds on the run's clock)."""

    def __init__(
        self, paths: Sequence[str | Path], capture_s: Sequence[float] | None = None
    ) -> None:
        """Raises: FileNotFoundError naming a missing file; ValueError on a length mismatch
        or times that go backwards."""
        self.paths = [Path(p) for p in paths]
        times = list(capture_s) if capture_s is not None else [0.0] * len(self.paths)
        if len(times) != len(self.paths):
            raise ValueError(f"capture_s: {len(times)} times for {len(self.paths)} paths")
        if any(b < a for a, b in pairwise(times)):
            raise ValueError(f"capture_s: times must not decrease, got {times}")
        for p in self.paths:
            if not p.is_file():
                raise FileNotFoundError(f"{p}: no such image file")
        self.capture_s = times

    def __iter__(self) -> Iterator[Capture]:
        for p, t in zip(self.paths, self.capture_s, strict=True):
            yield Capture(p, t)

    def __len__(self) -> int:
        return len(self.paths)


class FolderSource(PathListSource):
    """Every image in a folder (sorted by name), one every ``interval_s`` from ``start_s``."""

    def __init__(self, folder: str | Path, interval_s: float = 0.0, start_s: float = 0.0) -> None:
        """Raises: FileNotFoundError if the folder is missing or holds no images;
        ValueError for a negative interval."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder")
        if interval_s < 0:
            raise ValueError(f"interval_s {interval_s}: must be >= 0")
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise FileNotFoundError(
                f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder"
            )
        super().__init__(paths, [start_s + i * interval_s for i in range(len(paths))])
