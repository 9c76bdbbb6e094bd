"""Jetson bundle (issue 12): its contents, and a real install into a fresh venv without
torch and without constriction (as on aarch64, where it has no wheel), then `verify` on
ONNX Runtime CPU with the portable coder. This machine is x86_64: the aarch64 wheels of
the other dependencies are not exercised."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import KODAK, REPO

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from PIL import Image

    from export.bundle import build_bundle
    from export.onnx import export_onnx
    from textboost.codec.image import load_image

    root = tmp_path_factory.mktemp("bundle")
    crop = root / "crop.png"
    Image.fromarray(load_image(KODAK / "kodim23.png")[200:296, 300:460]).save(crop)
    export_onnx(None, root / "onnx", images=[crop])
    out = root / "jetson"
    build_bundle(out, target="jetson", onnx_dir=root / "onnx")
    return out


def test_bundle_contents(bundle):
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["target"] == "jetson"
    for name in ("install.sh", "verify.sh", "build_engines.sh", "requirements-jetson.txt",
                 "textboost-sender.service", "sender.env", "README.md",
                 "onnx/sender.onnx", "onnx/receiver.onnx", "onnx/textboost-onnx.json",
                 f"model/{manifest['model_file']}"):  # fmt: skip
        assert (bundle / name).is_file(), name
        if name != "README.md":
            assert name in manifest["files"]
    assert not list(bundle.rglob("*.engine"))  # engines are built on the device
    wheel = next((bundle / "wheels").glob("textboost_link-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith("METADATA"))).decode()
        names = z.namelist()
    requires = [ln for ln in meta.splitlines() if ln.startswith("Requires-Dist:")]
    assert all("extra ==" in ln for ln in requires if "torch" in ln)
    assert "textboost/zoo/tb-small-cpu3.safetensors" in names
    assert "export/verify.py" in names and "uplink/__init__.py" in names
    req = (bundle / "requirements-jetson.txt").read_text()
    assert "torch" not in [ln.split(">")[0].strip() for ln in req.splitlines()]
    assert "onnxruntime-gpu" in req and "TensorRT" in req and "portable coder" in req
    assert "onnxruntime>=" in req and "\nconstriction" not in req
    unit = (bundle / "textboost-sender.service").read_text()
    assert "EnvironmentFile=/opt/textboost/sender.env" in unit and "uplink send" in unit


def test_bundle_refuses_a_non_empty_folder(bundle):
    from export.bundle import build_bundle

    with pytest.raises(FileExistsError, match="not empty"):
        build_bundle(bundle)


@pytest.mark.slow
def test_bundle_installs_without_torch_and_verifies(bundle, tmp_path):
    prefix = tmp_path / "prefix"
    env = {
        **os.environ,
        "PREFIX": str(prefix),
        "VENV_FLAGS": "",
        "PYTHON": sys._base_executable,
        "SKIP_CONSTRICTION": "1",
    }  # as on aarch64
    env.pop("VIRTUAL_ENV", None)
    r = subprocess.run(["bash", str(bundle / "install.sh")], env=env, capture_output=True,
                       text=True, timeout=1500)  # fmt: skip
    assert r.returncode == 0, (r.stdout[-1500:], r.stderr[-3000:])
    py = prefix / "venv" / "bin" / "python"
    for absent in ("torch", "constriction"):
        r = subprocess.run([str(py), "-c", f"import {absent}"], capture_output=True, text=True)
        assert r.returncode != 0 and f"No module named '{absent}'" in r.stderr
    r = subprocess.run(
        ["bash", str(bundle / "verify.sh"), "--json", "--image",
         str(REPO / "link_sim/data/kodak/kodim07.png"), "--max-bytes", "1200"],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, (r.stdout[-1500:], r.stderr[-3000:])
    out = json.loads(r.stdout)
    assert out["ok"] and out["backend"] == "onnxruntime" and out["bytes"] <= 1200
    assert out["psnr_db"] > 20 and out["entropy_coder"] == "portable"
    assert {"load", "g_a_h_a", "budget_search_and_coding", "g_s"} <= set(out["seconds"])
