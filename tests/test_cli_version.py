"""Every CLI answers --version with the installed package's version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import textboost

from .conftest import needs_torch
from .helpers import run_module

pytestmark = pytest.mark.edge


@pytest.mark.parametrize(
    "module",
    ["textboost", "link_sim", "uplink", "downlink", "export", "textboost.eval",
     pytest.param("textboost.train", marks=needs_torch)],
)  # fmt: skip
def test_version(module):
    r = run_module(module, "--version", timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"python -m {module} {textboost.__version__}"
    assert textboost.__version__ != "0+unknown"  # installed: the version comes from metadata



@pytest.mark.parametrize(
    "script", ["textboost", "link-sim", "uplink", "downlink", "textboost-export"]
)
def test_console_script(script):
    """The console scripts of ``[project.scripts]`` run the same CLIs under their own name."""
    exe = Path(sys.executable).parent / script
    assert exe.is_file(), f"{exe}: not installed (pip install -e . installs the scripts)"
    r = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{script} {textboost.__version__}"
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith(f"usage: {script} "), r.stdout[:200]
