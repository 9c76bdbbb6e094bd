"""The ground service's durable state (SQLite, WAL): its epoch, the replay window over the
sender, the frames of bundles still being reassembled, and what was delivered.

Partial reassembly survives a restart as the frames themselves: every DATA/PARITY frame the
receiver accepted for a bundle not yet delivered is kept (with the replay window, in one
transaction per batch of datagrams) and fed again, in arrival order, to a fresh
:class:`~textboost.protocol.Receiver` at start through ``restore_frame``, which checks the
FCS and tag but not the window (the restored window already covers them). The frames are
the protocol's own record of the bundle, so nothing of the reassembly logic is repeated
here, and a restored receiver is in the same state as one that never stopped. They are
kept with ``synchronous=NORMAL`` (safe against kill -9; a power cut may lose the last ones,
which the sender's ARQ fetches again).

Delivery is ``synchronous=FULL``: the image row (by the SHA-256 of its `.tbx`) and the
delivered ``(epoch, bundle)`` are on disk before the FIN is queued.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from textboost.field.store import SqliteStore

__all__ = ["DownlinkState", "SeenMarks", "StoredImage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS frames (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    epoch INTEGER NOT NULL, bundle INTEGER NOT NULL, data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS frames_bundle ON frames (epoch, bundle);
CREATE TABLE IF NOT EXISTS images (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,              -- out_dir/NAME.tbx, .json, .png
    bytes INTEGER NOT NULL,
    epoch INTEGER NOT NULL, bundle INTEGER NOT NULL,  -- the first delivery
    delivered_t REAL NOT NULL,
    decoded_t REAL                   -- the full PNG written (NULL: to do, also after a crash)
);
CREATE TABLE IF NOT EXISTS delivered (
    epoch INTEGER NOT NULL, bundle INTEGER NOT NULL, sha256 TEXT NOT NULL,
    t REAL NOT NULL, PRIMARY KEY (epoch, bundle)
);
CREATE TABLE IF NOT EXISTS seen (card TEXT PRIMARY KEY, t REAL NOT NULL);  -- page marks
"""


@dataclass(frozen=True, slots=True)
class StoredImage:
    sha256: str
    name: str


class DownlinkState(SqliteStore):
    """The ground's SQLite file at ``path`` (created with its folder). One thread at a time
    uses it."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, _SCHEMA)

    def replay_state(self) -> bytes:
        """The persisted window over the sender (``b""``: none yet)."""
        value = self._meta("replay")
        return bytes(value) if isinstance(value, bytes) else b""

    def save_frames(
        self, frames: list[tuple[int, int, bytes]], replay: bytes, window_epoch: int | None
    ) -> None:
        """Keep accepted frames ``(epoch, bundle, data)`` of open bundles with the window;
        forget frames of sender epochs older than the window's (they can never complete)."""
        with self.transaction(durable=False) as db:
            db.executemany("INSERT INTO frames (epoch, bundle, data) VALUES (?, ?, ?)", frames)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('replay', ?)", (replay,))
            if window_epoch is not None:
                db.execute("DELETE FROM frames WHERE epoch < ?", (window_epoch,))

    def frames(self, epoch: int) -> list[bytes]:
        """The kept frames of sender epoch ``epoch``, in arrival order."""
        rows = self.db.execute("SELECT data FROM frames WHERE epoch=? ORDER BY seq", (epoch,))
        return [bytes(r[0]) for r in rows]

    def image(self, sha256: str) -> StoredImage | None:
        row = self.db.execute("SELECT sha256, name FROM images WHERE sha256=?", (sha256,))
        found = row.fetchone()
        return None if found is None else StoredImage(*found)

    def deliver(
        self, epoch: int, bundle: int, sha256: str, name: str | None, n_bytes: int,
        replay: bytes,
    ) -> None:  # fmt: skip
        """Record a delivered bundle, durable on return; ``name`` None: a duplicate of an
        image stored before (only the bundle is recorded). Its kept frames go."""
        now = time.time()
        with self.transaction() as db:
            if name is not None:
                db.execute(
                    "INSERT INTO images (sha256, name, bytes, epoch, bundle, delivered_t) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (sha256, name, n_bytes, epoch, bundle, now),
                )
            db.execute(
                "INSERT OR REPLACE INTO delivered VALUES (?, ?, ?, ?)", (epoch, bundle, sha256, now)
            )
            db.execute("DELETE FROM frames WHERE epoch=? AND bundle=?", (epoch, bundle))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('replay', ?)", (replay,))

    def delivered(self, epoch: int) -> list[int]:
        """Bundle ids of sender epoch ``epoch`` delivered (to answer their EOFs with FIN)."""
        rows = self.db.execute("SELECT bundle FROM delivered WHERE epoch=?", (epoch,))
        return [r[0] for r in rows]

    def decoded(self, sha256: str) -> None:
        with self.transaction(durable=False) as db:
            db.execute("UPDATE images SET decoded_t=? WHERE sha256=?", (time.time(), sha256))

    def not_decoded(self) -> list[StoredImage]:
        rows = self.db.execute("SELECT sha256, name FROM images WHERE decoded_t IS NULL")
        return [StoredImage(*r) for r in rows]

    def counts(self) -> dict[str, int]:
        images = self.db.execute("SELECT COUNT(*) FROM images").fetchone()[0]
        bundles = self.db.execute("SELECT COUNT(*) FROM delivered").fetchone()[0]
        return {"images": images, "bundles_delivered": bundles}


class SeenMarks:
    """The live page's "seen" marks, by card key (``eEPOCH_bBUNDLE``: one per photo, the
    same after a restart of either side), in the ``seen`` table of the ground's state file
    (created by :class:`DownlinkState` first). A connection of its own, locked: the page's
    request threads use it while the service's thread uses the state."""

    def __init__(self, path: str | Path, timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=timeout_s,
                                  check_same_thread=False)  # fmt: skip

    def all(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self.db.execute("SELECT card FROM seen")}

    def mark(self, card: str, seen: bool) -> None:
        """Durable on return (``synchronous=FULL``)."""
        with self._lock:
            self.db.execute("PRAGMA synchronous=FULL")
            if seen:
                self.db.execute("INSERT OR REPLACE INTO seen VALUES (?, ?)", (card, time.time()))
            else:
                self.db.execute("DELETE FROM seen WHERE card=?", (card,))

    def close(self) -> None:
        with self._lock:
            self.db.close()
