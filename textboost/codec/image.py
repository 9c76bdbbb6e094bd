"""Image input normalisation: any size and mode in, 8-bit RGB arrays out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "MAX_IMAGE_PIXELS",
    "check_size",
    "load_image",
    "pad_to_multiple",
    "psnr_db",
    "resize",
    "to_rgb8",
]

# Largest image the codec takes in or hands out (64 MP, e.g. 8000×8000): checked on the
# file's header before its pixels are read, and on every decoded header.
MAX_IMAGE_PIXELS = 1 << 26


def check_size(width: int, height: int, what: str = "image") -> None:
    """Raises ValueError naming the size when it exceeds ``MAX_IMAGE_PIXELS``."""
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"{what} {width}x{height} ({width * height / 1e6:.0f} MP) exceeds the "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} MP limit"
        )


def load_image(path: str | Path) -> np.ndarray:
    """Read any Pillow-readable file (RGB, RGBA, greyscale, palette, 16-bit PNG) as RGB uint8.

    The size is checked against ``MAX_IMAGE_PIXELS`` before the pixels are decoded.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            try:
                check_size(*im.size)
            except ValueError as e:
                raise _TooLarge(f"{path}: {e}") from None
            im.load()
            return to_rgb8(im)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except _TooLarge as e:
        raise ValueError(str(e)) from None
    except Image.DecompressionBombError as e:  # Pillow's own cap, above ours
        raise ValueError(f"{path}: {e}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path}: not a readable image ({e})") from e
    except Exception as e:  # Pillow's parsers raise SyntaxError, struct.error, ... on junk
        raise ValueError(f"{path}: not a readable image ({type(e).__name__}: {e})") from e


class _TooLarge(Exception):
    """Our own size check, kept apart from Pillow's errors in :func:`load_image`."""


def to_rgb8(img: np.ndarray | Image.Image) -> np.ndarray:
    """HxWx3 uint8. Greyscale is replicated, alpha dropped, 16-bit scaled by 1/257."""
    if isinstance(img, Image.Image):
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            img = np.asarray(img, dtype=np.uint32)
            img = np.clip(img, 0, 65535).astype(np.uint16)
        elif img.mode not in ("RGB", "L"):
            img = img.convert("RGBA" if "A" in img.mode or img.mode == "P" else "RGB")
            img = np.asarray(img)
        else:
            img = np.asarray(img)
    a = np.asarray(img)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"image array of shape {a.shape}, expected HxW, HxWx1, HxWx3 or HxWx4")
    if a.shape[2] in (2, 4):  # drop alpha
        a = a[:, :, :-1]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        return (np.clip(a, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    raise ValueError(f"image dtype {a.dtype}, expected uint8, uint16 or float in [0, 1]")


def pad_to_multiple(a: np.ndarray, multiple: int) -> np.ndarray:
    """Edge-replicate an HxWxC array up to multiples of ``multiple``."""
    h, w = a.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        a = np.pad(a, ((0, ph), (0, pw), (0, 0)), mode="edge")
    return a


def resize(a: np.ndarray, width: int, height: int) -> np.ndarray:
    """An HxWx3 uint8 array resampled to ``width``×``height`` with Lanczos (Pillow)."""
    return np.asarray(Image.fromarray(a).resize((width, height), Image.LANCZOS))


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    """RGB PSNR in dB between two uint8 images of equal shape (inf if identical).

    Summed in row blocks with integer arithmetic, so a 24 MP frame needs a few MB, not
    two float64 copies of the image (1.2 GB).
    """
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    rows = max(1, (1 << 20) // max(1, a[0].size))
    sse = 0
    for i in range(0, a.shape[0], rows):
        d = a[i : i + rows].astype(np.int32) - b[i : i + rows].astype(np.int32)
        sse += int(np.sum(d * d, dtype=np.int64))
    mse = sse / a.size
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)
