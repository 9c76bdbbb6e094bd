"""What both field services' SQLite state shares: the file (WAL, one thread at a time), a
``meta`` key/value table, transactions of a chosen durability, the epoch counter, and the
check that a state file is whole before a service starts on it.

A new file is built beside its final name and renamed into place, so a file at the state
path that is empty, not SQLite or fails ``PRAGMA quick_check`` is damage (a cut power, a
bad card, a stray write), never a service killed while creating it. Such a file is moved
aside with its WAL (``NAME.damaged-STAMP``) and the service refuses to start with one line
naming both: it never starts silently empty over a database that held work. The next start
begins with a new file; the damaged one is kept for the operator.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["SqliteStore", "StateError"]

_MAGIC = b"SQLite format 3\x00"


class StateError(ValueError):
    """A damaged state file; the message names it and where it was moved."""


class SqliteStore:
    """The SQLite file at ``path`` (created with its folder), with ``schema`` applied; the
    schema must define ``meta (key TEXT PRIMARY KEY, value ...)``.

    Raises: StateError if the file at ``path`` is damaged (moved aside first)."""

    def __init__(self, path: str | Path, schema: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            self._create(schema)
        problem = _damage(self.path)
        db = None
        if problem is None:
            try:
                db = self._connect()
                problem = _quick_check(db)
                if problem is None:
                    db.executescript(schema)
            except sqlite3.DatabaseError as exc:
                problem = str(exc)
        if problem is not None:
            if db is not None:
                db.close()
            aside = self._move_aside()
            raise StateError(
                f"{self.path}: damaged state database ({problem}); moved to {aside.name}. "
                "Nothing in it is read: start again to begin with a new file"
            )
        self.db = db

    def _connect(self, path: Path | None = None) -> sqlite3.Connection:
        db = sqlite3.connect(path or self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    def _create(self, schema: str) -> None:
        """Build the file beside its name and rename it into place (durably)."""
        tmp = self.path.with_name(self.path.name + ".new")
        for p in (tmp, *_companions(tmp)):
            p.unlink(missing_ok=True)
        db = self._connect(tmp)
        db.executescript(schema)
        db.close()  # checkpoints the WAL into the file and removes it
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside, n = self.path.with_name(f"{self.path.name}.damaged-{stamp}"), 1
        while aside.exists():  # damaged twice in one second: keep both
            n += 1
            aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{n}")
        for src in (self.path, *_companions(self.path)):
            if src.exists():
                os.replace(src, aside.with_name(aside.name + src.name[len(self.path.name) :]))
        _fsync_dir(self.path.parent)
        return aside

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


def _companions(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def _damage(path: Path) -> str | None:
    """What is wrong with the file's first bytes (None: it looks like SQLite)."""
    with open(path, "rb") as f:
        head = f.read(len(_MAGIC))
    if not head:
        return "the file is empty"
    if head != _MAGIC:
        return f"not an SQLite file (starts {head[:8]!r})"
    return None


def _quick_check(db: sqlite3.Connection) -> str | None:
    rows = [r[0] for r in db.execute("PRAGMA quick_check(3)")]
    return None if rows == ["ok"] else "; ".join(map(str, rows))


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
