"""Tiny MBTiles packages for tests and ``benchmarks/ground_page_inputs.py``: the MBTiles
1.3 layout written with sqlite3 (rows counted from the south, TMS), tiles drawn with
Pillow. Nothing is fetched."""

from __future__ import annotations

import io
import math
import sqlite3
from pathlib import Path

from PIL import Image


def tile_png(rgb: tuple[int, int, int], size: int = 256) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), rgb).save(buf, "PNG")
    return buf.getvalue()


def xyz(lat: float, lon: float, z: int) -> tuple[int, int]:
    """The XYZ tile (x, y from the north) under a position at zoom z."""
    n = 2**z
    r = math.radians(lat)
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(r)) / math.pi) / 2 * n)


def write_mbtiles(
    path: Path, tiles: dict[tuple[int, int, int], bytes], fmt: str = "png",
    meta: dict[str, str] | None = None,
) -> Path:  # fmt: skip
    """An MBTiles file holding ``tiles`` by XYZ address (z, x, y)."""
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE metadata (name TEXT, value TEXT);"
        "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, "
        "tile_data BLOB);"
        "CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);"
    )
    zs = [z for z, _, _ in tiles] or [0]
    rows = {"name": "test area", "format": fmt, "minzoom": str(min(zs)),
            "maxzoom": str(max(zs)), **(meta or {})}  # fmt: skip
    db.executemany("INSERT INTO metadata VALUES (?, ?)", rows.items())
    db.executemany(
        "INSERT INTO tiles VALUES (?, ?, ?, ?)",
        [(z, x, (1 << z) - 1 - y, data) for (z, x, y), data in tiles.items()],
    )
    db.commit()
    db.close()
    return path


def area_package(path: Path, lat: float, lon: float, zooms: range, radius: int = 2,
                 rgb: tuple[int, int, int] = (60, 170, 80)) -> Path:  # fmt: skip
    """Tiles of one colour around a position at each zoom (a stand-in area, drawn)."""
    png = tile_png(rgb)
    tiles = {}
    for z in zooms:
        cx, cy = xyz(lat, lon, z)
        for x in range(cx - radius, cx + radius + 1):
            for y in range(cy - radius, cy + radius + 1):
                if 0 <= x < 2**z and 0 <= y < 2**z:
                    tiles[(z, x, y)] = png
    return write_mbtiles(path, tiles)
