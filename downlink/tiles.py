"""The page's offline basemap: raster tiles from a folder ``Z/X/Y.png`` or an MBTiles file.

An MBTiles package is one SQLite file (the MBTiles 1.3 spec): a ``metadata`` table (name,
value: ``format`` png/jpg/webp, ``minzoom``, ``maxzoom``, ``bounds``...) and a ``tiles``
table or view (``zoom_level``, ``tile_column``, ``tile_row``, ``tile_data``) whose rows count
from the south (TMS): the page asks in XYZ (rows from the north), so row = 2^z - 1 - y. It is
opened read-only and never written; nothing is fetched from a network.

:func:`open_tiles` checks the package at start: a file that is not SQLite, is damaged, lacks
the tiles table or holds vector tiles is one :class:`TileError` line naming the file, and the
page goes on without a basemap.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

__all__ = ["MAX_ZOOM", "MBTiles", "TileError", "TileFolder", "open_tiles", "tile_address"]

MAX_ZOOM = 24  # deeper than any raster package: a request beyond it is refused unread
_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}
_MAGIC = b"SQLite format 3\x00"


class TileError(ValueError):
    """A tile package the page cannot draw; the message names the file and why."""


def tile_address(path: str) -> tuple[int, int, int] | None:
    """``Z/X/Y.png`` (the page's tile URL below ``/tiles/``) → (z, x, y) inside the world
    at zoom z; None for anything else."""
    parts = path.split("/")
    if len(parts) != 3 or not parts[2].endswith(".png"):
        return None
    parts[2] = parts[2][:-4]
    if not all(p.isascii() and p.isdigit() and len(p) <= 8 for p in parts):
        return None
    z, x, y = map(int, parts)
    return (z, x, y) if z <= MAX_ZOOM and x < 2**z and y < 2**z else None


class TileFolder:
    """``root/Z/X/Y.png``, as tile downloaders and ``mb-util`` write them."""

    def __init__(self, root: Path) -> None:
        self.path = root
        zooms = [int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit()]
        if not zooms:
            raise TileError(f"{root}: no zoom folders (expected {root}/Z/X/Y.png)")
        self.zooms = (min(zooms), min(max(zooms), MAX_ZOOM))

    def get(self, z: int, x: int, y: int) -> tuple[bytes, str] | None:
        try:
            return (self.path / str(z) / str(x) / f"{y}.png").read_bytes(), "image/png"
        except OSError:
            return None

    def close(self) -> None:
        pass


class MBTiles:
    """A raster MBTiles file, read-only; ``get`` is safe from the page's request threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with open(path, "rb") as f:
                head = f.read(len(_MAGIC))
        except OSError as exc:
            raise TileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
        if head != _MAGIC:
            raise TileError(f"{path}: not an MBTiles file (not SQLite)")
        self._lock = threading.Lock()
        try:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise TileError(f"{path}: cannot open it as SQLite ({exc})") from None
        self.db.text_factory = lambda b: b.decode("utf-8", "replace")  # names in any bytes
        try:
            self._check()
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            self.db.close()
            raise TileError(f"{path}: damaged MBTiles ({exc})") from None
        except TileError:
            self.db.close()
            raise

    def _check(self) -> None:
        names = {r[0] for r in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}  # fmt: skip
        if "tiles" not in names:
            raise TileError(f"{self.path}: not an MBTiles file (no tiles table)")
        meta: dict[str, str] = {}
        if "metadata" in names:
            meta = {str(k): str(v) for k, v in self.db.execute(
                "SELECT name, value FROM metadata")}  # fmt: skip
        fmt = meta.get("format", "png").strip().lower()
        if fmt not in _TYPES:
            kinds = ", ".join(sorted(_TYPES))
            raise TileError(f"{self.path}: format {fmt!r} is not drawn (expected raster "
                            f"tiles: {kinds}; vector tiles are pbf)")  # fmt: skip
        self.type = _TYPES[fmt]
        lo, hi = self.db.execute("SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles").fetchone()
        if not isinstance(lo, int) or not isinstance(hi, int) or lo < 0:
            raise TileError(f"{self.path}: the tiles table holds no tiles")
        self.zooms = (min(lo, MAX_ZOOM), min(hi, MAX_ZOOM))
        self.name = meta.get("name", self.path.stem)

    def get(self, z: int, x: int, y: int) -> tuple[bytes, str] | None:
        """The tile at XYZ (z, x, y), None where the package has none (or a read fails:
        a damaged page of the file loses those tiles, not the page)."""
        try:
            with self._lock:
                row = self.db.execute(
                    "SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? "
                    "AND tile_row=?", (z, x, (1 << z) - 1 - y)).fetchone()  # fmt: skip
        except (sqlite3.Error, ValueError, OverflowError):
            return None
        if row is None or not isinstance(row[0], bytes):
            return None
        return row[0], self.type

    def close(self) -> None:
        self.db.close()


def open_tiles(path: str | Path) -> TileFolder | MBTiles:
    """The tile source at ``path``: a folder, or an MBTiles file.

    Raises:
        TileError: one line naming ``path`` and what is wrong with it.
    """
    p = Path(path)
    if p.is_dir():
        return TileFolder(p)
    if not p.exists():
        raise TileError(f"{p}: no such file or folder (expected an .mbtiles file or a "
                        "Z/X/Y.png folder)")  # fmt: skip
    return MBTiles(p)
