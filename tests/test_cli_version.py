"""Every CLI answers --version with the installed package's version."""

from __future__ import annotations

import pytest

import textboost

from .helpers import run_module


@pytest.mark.parametrize(
    "module",
    ["textboost", "link_sim", "uplink", "downlink", "export", "textboost.eval", "textboost.train"],
)
def test_version(module):
    r = run_module(module, "--version", timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"python -m {module} {textboost.__version__}"
    assert textboost.__version__ != "0+unknown"  # installed: the version comes from metadata

