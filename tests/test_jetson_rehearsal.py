"""The Jetson bundle on emulated aarch64 (benchmarks/jetson_rehearsal.py --quick): installed
in the arm64 root by its install.sh, one Kodak crop encoded there and here, each stream
decoded on both architectures to the same latents. Runs only where the arm64 root exists
(the full rehearsal builds it: docs/deploy.md) and this process may chroot; slow (qemu).
On the root's CPython 3.10 (JetPack 6's Python) where the rehearsal has built it, else on
Debian's 3.11: one of the two, to keep the suite's time."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "benchmarks" / "jetson_rehearsal.py"
_spec = importlib.util.spec_from_file_location("jetson_rehearsal", SCRIPT)
rehearsal = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rehearsal)
BINFMT, DEFAULT_ROOT = rehearsal.BINFMT, rehearsal.DEFAULT_ROOT
_PY310 = DEFAULT_ROOT / rehearsal.PY310.lstrip("/") / "bin" / "python3.10"
PYTHON = "3.10" if _PY310.exists() else "3.11"


def _missing() -> str | None:
    if not (DEFAULT_ROOT / "usr" / "bin" / "python3").exists():
        return (f"no arm64 root at {DEFAULT_ROOT} ($JETSON_ROOT); make it with "
                "`python benchmarks/jetson_rehearsal.py` (root, qemu-user-static, mmdebstrap)")
    if os.geteuid() != 0:
        return "the rehearsal chroots into the arm64 root: needs root"
    if shutil.which("qemu-aarch64-static") is None:
        return "qemu-aarch64-static is not installed (apt-get install qemu-user-static)"
    if not (BINFMT / "qemu-aarch64").is_file() and not (BINFMT / "register").exists():
        return "no binfmt_misc here to run aarch64 programs (mount binfmt_misc)"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_missing() is not None, reason=str(_missing()))
def test_emulated_aarch64_streams_decode_identically_on_x86(onnx_dir, tmp_path):
    out = tmp_path / "rehearsal.json"
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--python", PYTHON,
         "--onnx-dir", str(onnx_dir), "--out", str(out), "--work", str(tmp_path / "work")],
        cwd=REPO, capture_output=True, text=True, timeout=3000,
    )  # fmt: skip
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    result = json.loads(out.read_text())
    counts = result["counts"]
    assert counts["streams"] == 2 and counts["cross_decodes"] == 2
    assert counts["latent_mismatches"] == 0
    aarch64 = result["versions"]["aarch64"]
    assert aarch64["machine"] == "aarch64" and aarch64["entropy_coder"] == "portable"
    assert aarch64["python"].startswith(PYTHON + ".") and not result["root"]["stdlib"]["failed"]
    assert result["versions"]["x86_64"]["machine"] == "x86_64"
    assert all(row["psnr_on_x86_64_db"] > 20 for row in result["cross"])
