"""A field trial on loopback for tests and ``benchmarks/field_kill.py``: both services as
subprocesses on a ``field.yaml`` in a temporary folder, pre-encoded `.tbx` images dropped
into the drop folder, kill -9 at will, and an audit of what arrived (from the output folder,
the uplink's SQLite queue and both event logs)."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from textboost.bitstream.container import Container, Header
from textboost.field.eventlog import read_events

ROOT = Path(__file__).resolve().parents[1]
KEY = b"field-harness-key-0123456789abcdef"


def tbx(rng: np.random.Generator, n_groups: int = 3) -> bytes:
    """A valid `.tbx` container (random payload; nothing decodes it: ``decode: false``)."""
    header = Header(model_id=b"TST1", width=64, height=48, rate=500, n_groups=n_groups)
    groups = tuple(rng.bytes(int(n)) for n in rng.integers(100, 600, size=n_groups))
    return Container(header=header, text=b"", z=rng.bytes(40), groups=groups).to_bytes()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder: Path, *, rto_s: float = 0.3, rate_bps: int = 400_000) -> Path:
    """``field.yaml`` for a loopback trial in ``folder`` (fast timers, no decoding)."""
    (folder / "key").write_bytes(KEY)
    path = folder / "field.yaml"
    path.write_text(
        f"""
link: {{mtu_bytes: 200, arq: deferred, rto_s: {rto_s}, nak_timeout_s: {rto_s},
        max_retries: 1000, key_file: key, key_id: 3}}
uplink:
  drop_dir: drop
  state_db: uplink.db
  event_log: uplink.jsonl
  bind: 127.0.0.1:0
  peer: 127.0.0.1:{free_port()}
  rate_bps: {rate_bps}
  poll_s: 0.05
downlink:
  listen: PEER
  out_dir: out
  state_db: downlink.db
  event_log: downlink.jsonl
  decode: false
"""
    )
    text = path.read_text()
    peer = text.split("peer: ")[1].split("\n")[0]
    path.write_text(text.replace("PEER", peer))
    return path


class Trial:
    """Both services of a loopback trial in ``folder``."""

    def __init__(self, folder: Path, config: Path | None = None, **settings) -> None:
        """``config``: a field.yaml already in ``folder`` (else :func:`write_config`'s)."""
        self.folder = folder
        self.config = config or write_config(folder, **settings)
        self.procs: dict[str, subprocess.Popen] = {}
        self.sent: dict[str, str] = {}  # drop name -> sha256 of its .tbx bytes
        self.kills = 0

    def start(self, node: str) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        self.procs[node] = subprocess.Popen(
            [sys.executable, "-m", node, "serve", "--config", str(self.config)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    def restarts(self, node: str) -> int:
        """``restart`` events in ``node``'s log: how many times it came up."""
        log = self.folder / f"{node}.jsonl"
        if not log.exists():
            return 0
        return sum(e["event"] == "restart" for e in read_events(log))

    def start_and_wait(self, node: str, timeout_s: float = 30.0) -> None:
        """Start ``node`` and return once it is up (its ``restart`` event logged), so a
        kill that follows lands in the service's work, not in Python's start-up."""
        before = self.restarts(node)
        self.start(node)
        end = time.monotonic() + timeout_s
        while self.restarts(node) == before:
            if time.monotonic() > end or self.procs[node].poll() is not None:
                raise RuntimeError(f"{node} did not come up: {self.procs[node].poll()}")
            time.sleep(0.05)

    def kill(self, node: str) -> None:
        """kill -9, as a power cut would (minus the disk cache, which fsync covers)."""
        p = self.procs.pop(node)
        p.send_signal(signal.SIGKILL)
        p.wait()
        self.kills += 1

    def stop(self, node: str) -> str:
        """SIGTERM; returns what it wrote on stderr (empty for a clean run)."""
        p = self.procs.pop(node)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
        return err.decode()

    def stop_all(self) -> str:
        return "".join(self.stop(n) for n in list(self.procs))

    def drop(self, name: str, data: bytes) -> None:
        """As a camera would: NAME.tmp, then rename."""
        drop = self.folder / "drop"
        drop.mkdir(exist_ok=True)
        (drop / f"{name}.tmp").write_bytes(data)
        os.replace(drop / f"{name}.tmp", drop / name)
        self.sent[name] = hashlib.sha256(data).hexdigest()

    def acked(self) -> int:
        """Images the uplink's queue records as acknowledged (0 before it exists)."""
        db = self.folder / "uplink.db"
        if not db.exists():
            return 0
        with sqlite3.connect(db) as c:
            try:
                return c.execute("SELECT COUNT(acked_t) FROM images").fetchone()[0]
            except sqlite3.OperationalError:  # schema not there yet
                return 0

    def wait_acked(self, n: int, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.acked() >= n:
                return True
            time.sleep(0.1)
        return False

    def audit(self) -> dict[str, int]:
        """lost: sent, not stored at the ground; duplicated: stored (``delivered``) more
        than once; acked_resent: submitted again after its ack; resubmitted(_bytes):
        submissions beyond an image's first (restarts before its ack); corrupt: stored bytes
        that differ from the sent ones."""
        out = self.folder / "out"
        stored = {}
        for p in out.glob("*.tbx"):
            stored[hashlib.sha256(p.read_bytes()).hexdigest()] = p
        dn = list(read_events(self.folder / "downlink.jsonl"))
        up = list(read_events(self.folder / "uplink.jsonl"))
        delivered = Counter(e["sha256"] for e in dn if e["event"] == "delivered")
        acked: set[str] = set()
        acked_resent = resubmitted = resubmitted_bytes = 0
        seen: set[str] = set()
        for e in up:
            if e["event"] == "acked":
                acked.add(e["image"])
            elif e["event"] == "submitted":
                acked_resent += e["image"] in acked
                if e["image"] in seen:
                    resubmitted += 1
                    resubmitted_bytes += e["bytes"]
                seen.add(e["image"])
        names = {p.stem for p in stored.values()}
        return {
            "sent": len(self.sent),
            "lost": sum(sha not in stored for sha in self.sent.values()),
            "duplicated": sum(n - 1 for n in delivered.values()) + len(stored) - len(names),
            "extra": len(set(stored) - set(self.sent.values())),
            "acked_resent": acked_resent,
            "resubmitted": resubmitted,
            "resubmitted_bytes": resubmitted_bytes,
            "duplicates_suppressed": sum(e["event"] == "duplicate" for e in dn),
            "frames_dropped": sum(e["event"] == "frame_dropped" for e in dn + up),
            "restarts": sum(e["event"] == "restart" for e in dn + up),
        }


def services_deliver(folder: Path, config: Path, prefix: str, seed: int, n: int = 3) -> None:
    """Both services on ``config``: ``n`` random images (PREFIX0.tbx, ...) dropped, each
    acked within 60 s and stored once, and no service wrote an error (the transports'
    end-to-end check, e.g. ``transport.kind: ccsds`` or ``mavlink``)."""
    trial = Trial(folder, config)
    rng = np.random.default_rng(seed)
    for i in range(n):
        trial.drop(f"{prefix}{i}.tbx", tbx(rng))
    trial.start("downlink")
    trial.start("uplink")
    try:
        assert trial.wait_acked(n, timeout_s=60)
    finally:
        errors = trial.stop_all()
    assert errors == ""
    audit = trial.audit()
    assert audit["lost"] == audit["duplicated"] == 0
