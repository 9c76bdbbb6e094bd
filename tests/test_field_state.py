"""Damaged state files (issue 22 item 9): a state database that is empty, cut short, garbage
or bit-flipped is named in one line, moved aside and never silently replaced by an empty
queue; a damaged row of the vehicle's queue is skipped with an event, the others are sent."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from downlink.state import DownlinkState
from tests.field_harness import ROOT, Trial, tbx, write_config
from textboost.field.eventlog import read_events
from textboost.field.store import StateError
from uplink.state import UplinkState

PAGE = 4096


def _with_work(path: Path, node: str) -> None:
    """A state file holding three queued images (vehicle) or delivered ones (ground)."""
    rng = np.random.default_rng(9)
    if node == "uplink":
        state = UplinkState(path)
        for i in range(3):
            data = tbx(rng)
            sha = hashlib.sha256(data).hexdigest()
            state.add(f"cam{i}.tbx", sha, None, data, sha, 0.1, 0.0)
    else:
        state = DownlinkState(path)
        for i in range(3):
            state.deliver(7, i, f"{i:064x}", f"n{i}", 100, b"")
    state.new_epoch()
    state.close()


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    assert len(data) >= 2 * PAGE  # the work is in the file (the WAL was checkpointed)
    if how == "zero-length":
        data = bytearray()
    elif how == "truncated":
        data = data[: len(data) // 2 + 100]
    elif how == "garbage":
        data = bytearray(np.random.default_rng(1).bytes(len(data)))
    else:  # one bit of the second page's b-tree header (its page type)
        data[PAGE] ^= 0x04
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("node", ["uplink", "downlink"])
@pytest.mark.parametrize("how", ["zero-length", "truncated", "garbage", "bit-flipped"])
def test_a_damaged_state_file_is_named_moved_aside_never_started_empty(tmp_path, node, how):
    path = tmp_path / f"{node}.db"
    cls = UplinkState if node == "uplink" else DownlinkState
    _with_work(path, node)
    _damage(path, how)
    damaged = path.read_bytes()
    with pytest.raises(StateError) as info:
        cls(path)
    message = str(info.value)
    assert message.startswith(f"{path}: damaged state database (") and "\n" not in message
    (aside,) = tmp_path.glob(f"{node}.db.damaged-*[0-9TZ]")
    assert aside.name in message and aside.read_bytes() == damaged  # kept as found
    assert not path.exists()
    fresh = cls(path)  # the next start: a new file, after the one-line refusal
    assert sum(fresh.counts().values()) == 0
    fresh.close()


def test_a_new_state_file_appears_whole(tmp_path):
    """Built beside its name and renamed: never an empty file at the state path."""
    state = UplinkState(tmp_path / "u.db")
    assert (tmp_path / "u.db").read_bytes()[:16] == b"SQLite format 3\x00"
    assert not (tmp_path / "u.db.new").exists()
    state.close()
    UplinkState(tmp_path / "u.db").close()  # a whole file opens again


@pytest.mark.parametrize("node", ["uplink", "downlink"])
def test_serve_on_a_damaged_state_file_exits_2_with_one_line(tmp_path, node):
    config = write_config(tmp_path)
    db = tmp_path / f"{node}.db"
    _with_work(db, node)
    db.write_bytes(b"")
    r = subprocess.run(
        [sys.executable, "-m", node, "serve", "--config", str(config), "--max-s", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert f"{db}: damaged state database (the file is empty); moved to {node}.db" in line


def test_a_damaged_queue_row_is_skipped_with_an_event_the_rest_is_sent(tmp_path):
    """One row's `.tbx` is garbage, another's has one bit flipped (SQLite cannot see
    that: its SHA-256 does): both are skipped with an event naming the row and kept in
    the file; the third image is delivered."""
    trial = Trial(tmp_path)
    db = tmp_path / "uplink.db"
    _with_work(db, "uplink")
    with sqlite3.connect(db) as c:
        good = c.execute("SELECT tbx FROM images WHERE image_id='cam2.tbx'").fetchone()[0]
        flipped = bytearray(c.execute("SELECT tbx FROM images WHERE image_id='cam1.tbx'")
                            .fetchone()[0])  # fmt: skip
        flipped[200] ^= 0x01
        c.execute("UPDATE images SET tbx=? WHERE image_id='cam0.tbx'", (b"garbage" * 30,))
        c.execute("UPDATE images SET tbx=? WHERE image_id='cam1.tbx'", (bytes(flipped),))
    trial.sent["cam2.tbx"] = hashlib.sha256(good).hexdigest()
    trial.start("downlink")
    trial.start("uplink")
    try:
        assert trial.wait_acked(1, timeout_s=30)
        assert trial.procs["uplink"].poll() is None
    finally:
        assert trial.stop_all() == ""
    assert trial.audit()["lost"] == 0
    skipped = {
        e["image"]: e["reason"]
        for e in read_events(tmp_path / "uplink.jsonl")
        if e["event"] == "skipped"
    }
    assert set(skipped) == {"cam0.tbx", "cam1.tbx"}
    for image_id, reason in skipped.items():
        assert reason.startswith(f"{db}: row image_id='{image_id}': ")
        assert reason.endswith("not sent, kept in the file")
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*) FROM images WHERE acked_t IS NULL").fetchone() == (2,)
