"""Services that talk: ``serve`` says what it listens on and writes, one line per photo, what
a stop waits for; a second ground names the address in use; ``status`` reads the state."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from tests.field_harness import ROOT, tbx, write_config
from textboost.field.config import load_field_config


class Serve:
    """``python -m NODE serve`` with its stdout read line by line."""

    def __init__(self, node: str, config: Path) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        self.p = subprocess.Popen(
            [sys.executable, "-m", node, "serve", "--config", str(config)], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, text: str, timeout_s: float = 30.0) -> str:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r}; got {self.seen}")


def _status(node: str, config: Path) -> tuple[str, dict]:
    cmd = [sys.executable, "-m", node, "status", "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    text = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                          check=True).stdout  # fmt: skip
    doc = json.loads(subprocess.run([*cmd, "--json"], cwd=ROOT, env=env, capture_output=True,
                                    text=True, timeout=60, check=True).stdout)  # fmt: skip
    return text, doc


def test_services_say_what_they_do_and_status_reads_their_state(tmp_path):
    config = write_config(tmp_path)
    cfg = load_field_config(config)
    listen = cfg.downlink.listen
    text, doc = _status("downlink", config)
    assert f"service: not running (downlink.listen {listen} free)" in text
    assert "never ran" in text and doc["running"] is False
    ground = Serve("downlink", config)
    try:
        line = ground.expect("serving")
        assert f"listening on udp {listen}" in line and str(tmp_path / "out") in line
        assert "Ctrl-C or SIGTERM stops" in line
        # a second ground on the same address: the address, the cause and the way out
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        second = subprocess.run(
            [sys.executable, "-m", "downlink", "serve", "--config", str(config)], cwd=ROOT,
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode == 2
        err = second.stderr.strip()
        assert f"downlink.listen {listen}: address already in use" in err
        assert "python -m downlink status --config" in err and len(err.splitlines()) == 1
        vehicle = Serve("uplink", config)
        try:
            vehicle.expect("serving")
            (tmp_path / "drop").mkdir(exist_ok=True)
            tmp = tmp_path / "drop" / "eu5.tmp"
            tmp.write_bytes(tbx(np.random.default_rng(3)))
            tmp.rename(tmp_path / "drop" / "eu5.tbx")
            assert "eu5.tbx" in vehicle.expect("encoding")
            assert "eu5.tbx" in vehicle.expect("acked")
            assert "delivered" in ground.expect("delivered")
            text, doc = _status("uplink", config)
            assert doc["acknowledged"] == 1 and doc["waiting"] == 0 and doc["in_flight"] == 0
            assert "last acknowledgement: eu5.tbx" in text and "ground: answering" in text
        finally:
            vehicle.p.send_signal(signal.SIGINT)
            vehicle.expect("SIGINT: stopping")
            vehicle.expect("stopped")
            vehicle.p.wait(10)
        text, doc = _status("downlink", config)
        assert doc["running"] and doc["images_stored"] == 1 and doc["under_reassembly"] == 0
        assert f"service: running (holds downlink.listen {listen})" in text
        assert "last delivery: " in text and "vehicle: last frame" in text
    finally:
        ground.p.send_signal(signal.SIGTERM)
        ground.expect("SIGTERM: stopping")
        ground.expect("stopped")
        assert ground.p.wait(10) == 0
    assert _status("downlink", config)[1]["running"] is False  # its address is free again


def test_status_of_a_vehicle_whose_ground_is_down(tmp_path):
    config = write_config(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM):
        text, doc = _status("uplink", config)
    assert "never ran" in doc["state"] and "ground: no FIN yet" in text
    assert "service: unknown (no fixed address" in text  # uplink.bind port 0, no intake
