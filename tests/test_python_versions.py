"""Python 3.10 on the edge (JetPack 6 ships 3.10; JetPack 7, 3.12): no name newer than 3.10
in the packages or the tests (vermin, so a 3.11-only name such as ``datetime.UTC`` or
``typing.Self`` fails here on any interpreter), and every module the sender can import
imports with torch absent. ``.ci/run`` runs the edge tests on a real 3.10 and 3.12."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.edge

PACKAGES = ("textboost", "uplink", "downlink", "link_sim", "export")
# torch is for training, export and the reference backend (DESIGN.md): these modules and
# areas may need it (the receiver's torch fusion, evaluation and training are not the edge)
NEEDS_TORCH = (
    "textboost.blocks",
    "textboost.codec.entropy_models",
    "textboost.codec.layers",
    "textboost.codec.model",
    "textboost.fusion.",
    "textboost.eval.",
    "textboost.train.",
    "export.onnx",
)


def test_no_name_newer_than_python_310():
    pytest.importorskip("vermin", reason="vermin is not installed (pip install -e '.[dev]')")
    # str.decode, file: vermin reads some bytes.decode() and a variable named file as Python 2
    run = "import sys, vermin; sys.exit(vermin.main())"
    r = subprocess.run([sys.executable, "-c", run, "-t=3.10-", "--violations",
                        "--eval-annotations", "--no-tips", "--exclude", "str.decode",
                        "--exclude", "file", *PACKAGES, "tests"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)  # fmt: skip
    found = [ln for ln in r.stdout.splitlines() if "requires" in ln or ln.startswith("!")]
    assert r.returncode == 0 and not found, "\n".join(found) or r.stdout[-2000:]


def _edge_modules() -> list[str]:
    names = []
    for pkg in PACKAGES:
        for info in pkgutil.walk_packages([str(REPO / pkg.replace(".", "/"))], f"{pkg}."):
            name = info.name
            if name.endswith("__main__") or name.startswith(NEEDS_TORCH) or name in NEEDS_TORCH:
                continue
            names.append(name)
    return [*PACKAGES, *names]


def test_every_edge_module_imports_without_torch():
    """In a fresh process with torch blocked, on whatever Python runs the suite."""
    modules = _edge_modules()
    assert "uplink.cli" in modules and "textboost.codec.portable_coder" in modules
    code = (
        "import importlib, sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError(f'torch is blocked in this test ({name})')\n"
        "sys.meta_path.insert(0, _Block())\n"
        "bad = []\n"
        f"for m in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except Exception as e:\n"
        "        bad.append(f'{m}: {type(e).__name__}: {e}')\n"
        "print('\\n'.join(bad))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
