"""A visual strip: the same crop of an image as the original and as each codec decodes it at
one target bpp (each codec at the same byte budget, baselines fitted by the budget search)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from textboost.bitstream.container import Container
from textboost.codec.exact import RATE_MAX
from textboost.codec.image import psnr_db
from textboost.codec.rate import bpp_of
from textboost.eval.baselines import get_baseline
from textboost.eval.budget import DOWNSCALE_DIVISORS, budget_bytes, reconstruct, search_budgets
from textboost.eval.ours import OURS_NAME, BudgetError

__all__ = ["Crop", "Panel", "decode_at_budget", "make_strip", "render_strip"]

_LABEL_H = 36


@dataclass(frozen=True)
class Crop:
    """A rectangle in image pixels."""

    x: int
    y: int
    width: int
    height: int

    def check(self, img_w: int, img_h: int) -> None:
        if self.width <= 0 or self.height <= 0 or self.x < 0 or self.y < 0:
            raise ValueError(f"crop {self} must have x, y >= 0 and a positive size")
        if self.x + self.width > img_w or self.y + self.height > img_h:
            raise ValueError(f"crop {self} does not fit in the {img_w}x{img_h} image")

    def apply(self, img: np.ndarray) -> np.ndarray:
        return img[self.y : self.y + self.height, self.x : self.x + self.width]


@dataclass(frozen=True)
class Panel:
    """One tile of the strip: a label, its decoded image (None if nothing fit) and figures."""

    label: str
    image: np.ndarray | None
    n_bytes: int | None = None
    psnr_db: float | None = None
    detail: str = ""


def decode_at_budget(
    img: np.ndarray, codec: str, budget: int
) -> tuple[bytes, np.ndarray, str] | None:
    """(file bytes, decoded full-size image, how it was coded) within `budget`, or None."""
    h, w = img.shape[:2]
    if codec == OURS_NAME:
        from textboost.eval.ours import OursEntrant

        ours = OursEntrant()
        try:
            data = ours.encode(img, budget)
        except BudgetError:
            return None
        hd = Container.parse(data).header
        how = f"rate {hd.rate / RATE_MAX:.2f} at {hd.coded_size[0]}x{hd.coded_size[1]}"
        return data, ours.decode(data), f"{how}, model {ours.settings['model_id']}"
    c = get_baseline(codec)
    cand = search_budgets(img, c, [budget], DOWNSCALE_DIVISORS).best[0]
    if cand is None:
        return None
    how = f"q{cand.quality} at {cand.coded_size[0]}x{cand.coded_size[1]}"
    return cand.data, reconstruct(c, cand, (w, h)), how


def make_strip(img: np.ndarray, codecs: Sequence[str], bpp: float) -> list[Panel]:
    """The original and one panel per codec, all at floor(bpp·W·H/8) bytes."""
    h, w = img.shape[:2]
    budget = budget_bytes(bpp, w, h)
    panels = [Panel("original", img)]
    for codec in codecs:
        got = decode_at_budget(img, codec, budget)
        if got is None:
            panels.append(Panel(codec, None, detail=f"nothing fits {budget} B"))
        else:
            data, recon, how = got
            panels.append(Panel(codec, recon, len(data), psnr_db(img, recon), how))
    return panels


def render_strip(
    panels: Sequence[Panel], crop: Crop, zoom: int, width: int, height: int
) -> Image.Image:
    """Panels side by side, each the crop scaled by `zoom` (nearest), captioned below."""
    if zoom < 1:
        raise ValueError(f"zoom must be >= 1, got {zoom}")
    crop.check(width, height)
    tile_w, tile_h = crop.width * zoom, crop.height * zoom
    gap = 6
    out = Image.new("RGB", (len(panels) * (tile_w + gap) - gap, tile_h + _LABEL_H), "white")
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=14)
    for i, p in enumerate(panels):
        x0 = i * (tile_w + gap)
        if p.image is None:
            draw.rectangle([x0, 0, x0 + tile_w - 1, tile_h - 1], fill=(128, 128, 128))
        else:
            tile = Image.fromarray(crop.apply(p.image)).resize((tile_w, tile_h), Image.NEAREST)
            out.paste(tile, (x0, 0))
        caption = f"{p.label}  {p.detail}".strip()
        if p.n_bytes is not None and p.psnr_db is not None:
            bpp = bpp_of(p.n_bytes, width, height)
            caption += f"\n{p.n_bytes} B, {bpp:.4f} bpp, {p.psnr_db:.2f} dB (whole image)"
        draw.multiline_text((x0 + 2, tile_h + 2), caption, fill=(0, 0, 0), font=font, spacing=2)
    return out
