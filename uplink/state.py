"""The edge service's durable state (SQLite, WAL): its epoch counter and the image queue.

What must survive a kill -9 or a power cut, and the commit that makes it so
(``synchronous=FULL``, so the commit is on disk when it returns):

- an image's `.tbx` bytes, committed *before* its source file leaves the drop folder;
- the epoch counter, incremented *before* the first frame of a new session (an epoch never
  repeats under one key, see :mod:`textboost.protocol.replay`);
- the ack, recorded when the FIN arrives (an acknowledged image is never sent again).

Which bundle carried an image in which epoch is recorded with ``synchronous=NORMAL``: it is
for the log and the operator, and a restart resubmits every unacknowledged image anyway.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from textboost.field.store import SqliteStore

__all__ = ["QueuedImage", "UplinkState"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id TEXT UNIQUE NOT NULL,
    source TEXT NOT NULL,            -- the drop folder file name it came as
    source_sha256 TEXT NOT NULL,     -- of the source file: a file seen again is not re-taken
    sidecar TEXT,                    -- the JSON sidecar, if one came with it
    tbx BLOB NOT NULL,
    sha256 TEXT NOT NULL,            -- of the .tbx bytes (the ground names the image by it)
    bpp REAL NOT NULL,
    captured_t REAL NOT NULL,        -- Unix seconds
    encoded_t REAL NOT NULL,
    epoch INTEGER, bundle INTEGER, submitted_t REAL,  -- the latest submission
    submissions INTEGER NOT NULL DEFAULT 0,
    acked_t REAL
);
CREATE INDEX IF NOT EXISTS images_source ON images (source, source_sha256);
"""


@dataclass(frozen=True, slots=True)
class QueuedImage:
    image_id: str
    tbx: bytes
    sha256: str


class UplinkState(SqliteStore):
    """The edge's SQLite file at ``path`` (created with its folder). One thread at a time
    uses it."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, _SCHEMA)

    def _write(self, sql: str, args: tuple = (), *, durable: bool = True) -> sqlite3.Cursor:
        """One statement in its own transaction; ``durable``: on disk when this returns."""
        with self.transaction(durable) as db:
            return db.execute(sql, args)

    def taken(self, source: str, source_sha256: str) -> str | None:
        """The image id if this exact file was taken before (its removal may not have
        happened: a crash between the commit and the unlink)."""
        row = self.db.execute(
            "SELECT image_id FROM images WHERE source=? AND source_sha256=?",
            (source, source_sha256),
        ).fetchone()
        return None if row is None else row[0]

    def add(
        self,
        source: str,
        source_sha256: str,
        sidecar: str | None,
        tbx: bytes,
        sha256: str,
        bpp: float,
        captured_t: float,
    ) -> str:
        """Queue an encoded image (durable on return). Returns its image id: the source
        name, with ``#n`` added if another image already has that name."""
        image_id, n = source, 1
        while self.db.execute("SELECT 1 FROM images WHERE image_id=?", (image_id,)).fetchone():
            n += 1
            image_id = f"{source}#{n}"
        self._write(
            "INSERT INTO images (image_id, source, source_sha256, sidecar, tbx, sha256, bpp, "
            "captured_t, encoded_t) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (image_id, source, source_sha256, sidecar, tbx, sha256, bpp, captured_t, time.time()),
        )
        return image_id

    def pending(self) -> list[QueuedImage]:
        """Images not acknowledged, oldest first."""
        rows = self.db.execute(
            "SELECT image_id, tbx, sha256 FROM images WHERE acked_t IS NULL ORDER BY seq"
        )
        return [QueuedImage(*r) for r in rows]

    def submitted(self, image_id: str, epoch: int, bundle: int) -> None:
        self._write(
            "UPDATE images SET epoch=?, bundle=?, submitted_t=?, submissions=submissions+1 "
            "WHERE image_id=?",
            (epoch, bundle, time.time(), image_id),
            durable=False,
        )

    def drop(self, image_id: str) -> None:
        """Forget a queued image the edge queue's drop policy let go (durable on return):
        its storage is what the policy frees; the ``dropped`` event keeps the record."""
        self._write("DELETE FROM images WHERE image_id=? AND acked_t IS NULL", (image_id,))

    def acked(self, image_id: str) -> None:
        """Record the FIN (durable on return)."""
        self._write("UPDATE images SET acked_t=? WHERE image_id=?", (time.time(), image_id))

    def counts(self) -> dict[str, int]:
        """``{"queued": not acknowledged, "acked": acknowledged}``."""
        q, a = self.db.execute(
            "SELECT COUNT(*) - COUNT(acked_t), COUNT(acked_t) FROM images"
        ).fetchone()
        return {"queued": q, "acked": a}
