"""The text benchmark's report: the tables and the crop grid, from a result document."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from textboost.eval.text_entrants import LABELS

__all__ = [
    "TABLE_HEADER",
    "Crop",
    "pick_rows",
    "print_tables",
    "render_grid",
    "round_robin",
    "table_rows",
]


@dataclass(frozen=True)
class Crop:
    """A grid tile: one ground-truth word of one image as each entrant decoded it."""

    dataset: str
    file: str
    gt_text: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels
    tiles: dict[str, np.ndarray]  # entrant -> RGB crop
    reads: dict[str, str]  # entrant -> what the spotter read there
    correct: dict[str, bool]
    carried: dict[str, tuple[str, bool]] = field(default_factory=dict)  # text-section words
    notes: dict[str, str] = field(default_factory=dict)  # entrant -> why it has no tile



def round_robin(keys: dict[str, list[str]], n: int) -> list[tuple[str, str]]:
    queues = [[(name, k) for k in ks] for name, ks in keys.items()]
    out: list[tuple[str, str]] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


def _fmt(v: float | None, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def table_rows(doc: dict[str, Any]) -> list[tuple[str, list[list[str]]]]:
    """Per dataset, the printable rows: entrant, target, bpp, text B, PSNR, DET, E2E, plates."""
    out = []
    for name, ds in doc["datasets"].items():
        rows = []
        for entrant, summary in ds["summary"].items():
            for r in summary:
                plate = r["plate_read_share"]
                row = [
                    entrant,
                    _fmt(r["target_bpp"], ".3f"),
                    f"{r['n_fit']}/{r['n_images']}",
                    _fmt(r["bpp"], ".4f"),
                    _fmt(r["text_bytes"], ".0f"),
                    _fmt(r["psnr_db"], ".2f"),
                    _fmt(r.get("text_psnr_db"), ".2f"),
                    f"{r['det']['precision']:.2f}/{r['det']['recall']:.2f}/{r['det']['f1']:.3f}",
                    f"{r['e2e']['precision']:.2f}/{r['e2e']['recall']:.2f}/{r['e2e']['f1']:.3f}",
                    _fmt(plate, ".2f"),
                ]
                carried = r.get("carried")
                row.append(
                    "—"
                    if carried is None
                    else f"{carried['e2e']['f1']:.3f}"
                    + (
                        f" ({carried['plate_read_share']:.2f})"
                        if carried["plate_read_share"] is not None
                        else ""
                    )
                )
                rows.append(row)
        out.append((f"{name} ({len(ds['images'])} images, {ds['kind']})", rows))
    return out


TABLE_HEADER = [
    "entrant",
    "target",
    "fit",
    "bpp",
    "text B",
    "PSNR",
    "words PSNR",
    "DET P/R/F1",
    "E2E P/R/F1",
    "plates",
    "carried E2E",
]


def print_tables(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 132))  # the whole table, even in a pipe
    for title, rows in table_rows(doc):
        t = Table(title=title)
        for h in TABLE_HEADER:
            t.add_column(h, justify="left" if h == "entrant" else "right")
        for r in rows:
            t.add_row(*r)
        console.print(t)
    if doc["unavailable"]:
        for e, why in doc["unavailable"].items():
            console.print(f"{e}: not run ({why})")


def pick_rows(crops: Sequence[Crop], n: int) -> list[Crop]:
    """Up to ``n`` crops, taking the datasets in turn (first images first)."""
    by_key = {(c.dataset, c.file): c for c in crops}
    keys: dict[str, list[str]] = {}
    for c in crops:
        keys.setdefault(c.dataset, []).append(c.file)
    return [by_key[k] for k in round_robin(keys, n)]


def render_grid(
    crops: Sequence[Crop],
    entrants: Sequence[str],
    bpp: float,
    tile_h: int = 100,
    max_tile_w: int = 360,
):
    """A PNG-ready image: one row per crop, one column per entrant, each tile upscaled
    (nearest, integer zoom) to about ``tile_h`` px high and captioned with what the spotter
    read on the matched box (green: E2E-correct, red: wrong or nothing) and, for TextBoost,
    the word its text section carried there."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=13)
    small = ImageFont.load_default(size=11)
    label_w, cap_h, head_h, gap = 190, 18, 22, 6
    geo = []
    for c in crops:
        x0, y0, x1, y1 = c.box
        cw, ch = x1 - x0, y1 - y0
        zoom = max(1, round(tile_h / max(ch, 1)))
        w, h = cw * zoom, ch * zoom
        if w > max_tile_w:  # a long word: shrink back to the column width
            h = max(1, round(h * max_tile_w / w))
            w = max_tile_w
        geo.append((zoom, w, h))
    titles = [
        "original" if e == "original" else f"{LABELS[e].split(',')[0]} @ {bpp:g} bpp"
        for e in entrants
    ]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    col_w = max(
        [w for _, w, _ in geo] + [round(probe.textlength(t, font=font)) + 6 for t in titles],
        default=max_tile_w,
    )  # a title never runs into the next column
    row_hs = [max(h, 3 * cap_h) + 2 * cap_h + gap for _, _, h in geo]
    width = label_w + len(entrants) * (col_w + gap)
    height = head_h + sum(row_hs) + gap
    out = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(out)
    for k, title in enumerate(titles):
        draw.text((label_w + k * (col_w + gap) + 2, 3), title, fill=(0, 0, 0), font=font)
    y = head_h
    for c, (zoom, w, h), rh in zip(crops, geo, row_hs, strict=True):
        size = f"{c.box[2] - c.box[0]}x{c.box[3] - c.box[1]} px, x{zoom}"
        label = f"{c.dataset}\n{c.file}\nGT: {c.gt_text}\n{size}"
        draw.multiline_text((3, y), label, fill=(0, 0, 0), font=small, spacing=1)
        for k, e in enumerate(entrants):
            x = label_w + k * (col_w + gap)
            tile = c.tiles.get(e)
            if tile is None or tile.size == 0:
                draw.rectangle([x, y, x + w - 1, y + h - 1], fill=(160, 160, 160))
                draw.text((x + 3, y + 3), c.notes.get(e, "nothing fits"), fill=(0, 0, 0),
                          font=small)  # fmt: skip
            else:
                im = Image.fromarray(tile).resize(
                    (tile.shape[1] * zoom, tile.shape[0] * zoom), Image.Resampling.NEAREST
                )
                if im.size != (w, h):
                    im = im.resize((w, h), Image.Resampling.LANCZOS)
                out.paste(im, (x, y))
            if e in c.notes:
                continue
            read = c.reads.get(e, "")
            ok = c.correct.get(e, False)
            draw.text(
                (x + 2, y + h + 2),
                f"read: {read!r}" if read else "read: (nothing)",
                fill=(0, 130, 0) if ok else (200, 0, 0),
                font=small,
            )
            if e in c.carried:
                text, ok = c.carried[e]
                draw.text(
                    (x + 2, y + h + 2 + cap_h - 4),
                    f"carried: {text!r}" if text else "carried: (nothing)",
                    fill=(0, 130, 0) if ok else (200, 0, 0),
                    font=small,
                )
        y += rh
    return out
