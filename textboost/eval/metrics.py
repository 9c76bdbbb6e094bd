"""MS-SSIM on 8-bit RGB, numpy/scipy only (PSNR is `textboost.codec.image.psnr_db`, which
the sender's budget search and the receiver use too).

MS-SSIM follows Wang, Simoncelli and Bovik, "Multi-scale structural similarity for image
quality assessment" (Asilomar 2003) and their reference MATLAB code (`msssim.m`): 11×11
Gaussian window with σ = 1.5 applied with 'valid' filtering, K1 = 0.01, K2 = 0.03, 2×2
average then decimation by 2 between scales (an odd last row or column is repeated, as the
MATLAB `imfilter(..., 'symmetric')` does), contrast-structure terms at scales 1..M-1 and the
full SSIM at scale M, combined with the exponents in `MS_SSIM_WEIGHTS`. Colour images are
scored per RGB channel and the channel scores averaged, the convention of the learned
image compression literature (CompressAI, pytorch-msssim); negative terms are clipped to 0
before the fractional powers (pytorch-msssim does the same; MATLAB would return a complex
number).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate1d

__all__ = [
    "MS_SSIM_MAX_PIXELS",
    "MS_SSIM_WEIGHTS",
    "gaussian_window_1d",
    "ms_ssim",
    "quality",
    "ssim_terms",
]

# Exponents β_1..β_5 = γ_1..γ_5 (α_5 = β_5) from Wang et al. 2003, section 3.
MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
DATA_RANGE_8BIT = 255.0
K1 = 0.01
K2 = 0.03
# MS-SSIM costs about a second a megapixel on a 2-core x86 (float64, per channel) and
# ~100 bytes a pixel: the CLIs' quality figures leave it out above this size, and say so.
MS_SSIM_MAX_PIXELS = 1 << 22


def _as_float_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"expected an HxW or HxWxC image, got shape {a.shape}")
    return a.astype(np.float64), b.astype(np.float64)


def gaussian_window_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian; its outer product is the 2-D SSIM window."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"window size must be odd and >= 1, got {size}")
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(r**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, win: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of a 2-D array with `win` ⊗ `win`."""
    n = win.size
    out = correlate1d(img, win, axis=0, mode="constant")
    out = correlate1d(out, win, axis=1, mode="constant")
    h = n // 2
    return out[h : img.shape[0] - h, h : img.shape[1] - h]


def ssim_terms(
    x: np.ndarray,
    y: np.ndarray,
    win: np.ndarray,
    data_range: float = DATA_RANGE_8BIT,
) -> tuple[float, float]:
    """Mean SSIM and mean contrast-structure term of two 2-D float images.

    Returns (mean of l·c·s map, mean of c·s map) over the 'valid' window positions.
    """
    if min(x.shape) < win.size:
        raise ValueError(f"image {x.shape} is smaller than the {win.size}x{win.size} window")
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    mu_x = _filter_valid(x, win)
    mu_y = _filter_valid(y, win)
    var_x = _filter_valid(x * x, win) - mu_x**2
    var_y = _filter_valid(y * y, win) - mu_y**2
    cov = _filter_valid(x * y, win) - mu_x * mu_y
    cs_map = (2.0 * cov + c2) / (var_x + var_y + c2)
    l_map = (2.0 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return float(np.mean(l_map * cs_map)), float(np.mean(cs_map))


def _downsample2(img: np.ndarray) -> np.ndarray:
    """2×2 mean then decimation; an odd last row/column is paired with itself."""
    if img.shape[0] % 2:
        img = np.concatenate([img, img[-1:, :]], axis=0)
    if img.shape[1] % 2:
        img = np.concatenate([img, img[:, -1:]], axis=1)
    return 0.25 * (img[0::2, 0::2] + img[1::2, 0::2] + img[0::2, 1::2] + img[1::2, 1::2])


def ms_ssim(
    a: np.ndarray,
    b: np.ndarray,
    data_range: float = DATA_RANGE_8BIT,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
    window_size: int = 11,
    sigma: float = 1.5,
) -> float:
    """MS-SSIM of two HxW or HxWxC images (channels scored separately, then averaged).

    The defaults are the standard 5-scale setting; the coarsest scale must still hold one
    window, so with 11×11 both sides must be at least 11·2⁴ = 176 pixels.
    """
    x, y = _as_float_pair(a, b)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    if not weights:
        raise ValueError("MS-SSIM needs at least one scale weight")
    min_side = window_size * 2 ** (len(weights) - 1)
    if min(x.shape[:2]) < min_side:
        raise ValueError(
            f"image {x.shape[1]}x{x.shape[0]} too small for {len(weights)}-scale MS-SSIM with a "
            f"{window_size}x{window_size} window: both sides must be >= {min_side}"
        )
    win = gaussian_window_1d(window_size, sigma)
    w = np.asarray(weights, dtype=np.float64)
    scores = []
    for ch in range(x.shape[2]):
        xc, yc = x[..., ch], y[..., ch]
        terms = []
        for level in range(len(w)):
            s, cs = ssim_terms(xc, yc, win, data_range)
            if level < len(w) - 1:
                terms.append(cs)
                xc, yc = _downsample2(xc), _downsample2(yc)
            else:
                terms.append(s)
        t = np.maximum(np.asarray(terms), 0.0)
        scores.append(float(np.prod(t**w)))
    return float(np.mean(scores))


def quality(original: np.ndarray, decoded: np.ndarray) -> dict[str, float | str | None]:
    """The figures ``python -m textboost encode --psnr`` and ``eval`` print for a decoded
    image: ``psnr_db`` (:func:`textboost.codec.image.psnr_db`) and ``ms_ssim``, which is
    None with ``ms_ssim_skipped`` saying why for an image too small for five scales or
    larger than ``MS_SSIM_MAX_PIXELS``."""
    from textboost.codec.image import psnr_db

    h, w = original.shape[:2]
    out: dict[str, float | str | None] = {"psnr_db": psnr_db(original, decoded), "ms_ssim": None}
    min_side = 11 * 2 ** (len(MS_SSIM_WEIGHTS) - 1)
    if min(w, h) < min_side:
        out["ms_ssim_skipped"] = f"{w}x{h}: MS-SSIM needs both sides >= {min_side}"
    elif w * h > MS_SSIM_MAX_PIXELS:
        out["ms_ssim_skipped"] = (
            f"{w * h / 1e6:.1f} MP: MS-SSIM is left out above {MS_SSIM_MAX_PIXELS / 1e6:.1f} MP"
        )
    else:
        out["ms_ssim"] = ms_ssim(original, decoded)
    return out
