"""What both field services' SQLite state shares: the file (WAL, one thread at a time), a
``meta`` key/value table, transactions of a chosen durability, and the epoch counter."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["SqliteStore"]


class SqliteStore:
    """The SQLite file at ``path`` (created with its folder), with ``schema`` applied; the
    schema must define ``meta (key TEXT PRIMARY KEY, value ...)``."""

    def __init__(self, path: str | Path, schema: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(schema)

    def close(self) -> None:
        self.db.close()

    def _meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE .. COMMIT; ``durable``: on disk when the block ends
        (``synchronous=FULL``), else safe against kill -9 only (``NORMAL``)."""
        self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            yield self.db

    def new_epoch(self, now: float | None = None) -> int:
        """This end's next epoch, durable before it is returned: ``max(last + 1, Unix
        seconds)``, so it never repeats even if this file is lost (while the clock is right)."""
        now = time.time() if now is None else now
        with self.transaction() as db:
            last = self._meta("epoch")
            epoch = max(-1 if last is None else int(last), int(now) - 1) + 1
            if epoch > 0xFFFF_FFFF:
                raise ValueError(f"{self.path}: epoch counter {epoch} past 2^32-1")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('epoch', ?)", (epoch,))
        return epoch
