"""Helpers the test modules share (paths from this file, never from the working directory)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_module(module: str, *argv: str, check: bool = False, timeout: float = 300):
    """``python -m module argv...`` run from the repository root, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )
