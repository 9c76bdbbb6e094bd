"""Jetson bundle (issues 12, 24): its files read as the device reads them (the systemd unit's
keys, install.sh through bash -n and shellcheck, field.yaml through the field services'
schema), the recorded aarch64 locks against pyproject.toml (no network), and a real install
into a fresh Python 3.10 venv (JetPack 6's Python) without torch and without constriction
(as on aarch64, where it has no wheel), then ``uplink verify`` on ONNX Runtime CPU with the
portable coder. The emulated aarch64 install: tests/test_jetson_rehearsal.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


def _python310() -> Path | None:
    """A Python 3.10 interpreter (pyenv's, as on the CI machines; not its shim), or None."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = sorted(root.glob("versions/3.10*/bin/python3.10"))
    if found:
        return found[-1]
    which = shutil.which("python3.10")
    return Path(which) if which and "/shims/" not in which else None


PYTHON310 = _python310()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, onnx_dir) -> Path:
    from export.bundle import build_bundle

    out = tmp_path_factory.mktemp("bundle") / "jetson"
    build_bundle(out, target="jetson", onnx_dir=onnx_dir)
    return out


def _unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file: section -> key -> values (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None and re.fullmatch(r"[A-Za-z]+", key), raw
        current.setdefault(key, []).append(value)
    return sections


def test_bundle_contents(bundle):
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["target"] == "jetson"
    for name in ("install.sh", "verify.sh", "build_engines.sh", "requirements-jetson-cp310.txt",
                 "requirements-jetson-cp312.txt", "textboost-uplink.service", "field.yaml",
                 "README.md", "onnx/sender.onnx", "onnx/receiver.onnx",
                 "onnx/textboost-onnx.json", f"model/{manifest['model_file']}"):  # fmt: skip
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
    assert "Requires-Python: <3.13,>=3.10" in meta  # JetPack 6's 3.10 is not refused
    assert "textboost/zoo/tb-small-cpu3.safetensors" in names
    assert "export/verify.py" in names and "uplink/__init__.py" in names
    for py in ("310", "312"):
        req = (bundle / f"requirements-jetson-cp{py}.txt").read_text()
        pins = [ln.split("==")[0] for ln in req.splitlines() if ln and not ln.startswith("#")]
        assert "torch" not in pins and "constriction" not in pins
        assert pins.count("onnxruntime") == 1 and "onnxruntime-gpu" not in pins
        assert "onnxruntime-gpu" in req and "TensorRT" in req and "portable coder" in req


def test_unit_runs_the_field_service(bundle):
    """The unit runs ``uplink serve --config field.yaml`` and keeps it running; the parsed
    command is the uplink CLI's own."""
    unit = _unit((bundle / "textboost-uplink.service").read_text())
    svc = unit["Service"]
    assert svc["ExecStart"] == [
        "/opt/textboost/venv/bin/python -m uplink serve --config /opt/textboost/field.yaml"
    ]
    assert svc["Restart"] == ["always"] and svc["StateDirectory"] == ["textboost"]
    assert svc["WorkingDirectory"] == ["/var/lib/textboost"] and svc["User"] == ["textboost"]
    assert svc["RestartPreventExitStatus"] == ["2"]  # the CLIs' one-line config errors
    assert "TEXTBOOST_CACHE=/var/lib/textboost/cache" in svc["Environment"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert unit["Unit"]["After"] == ["network-online.target"]
    from uplink.cli import build_parser

    args = build_parser().parse_args(svc["ExecStart"][0].split()[3:])
    assert args.command == "serve" and str(args.config) == "/opt/textboost/field.yaml"


def test_install_script_parses(bundle):
    for name in ("install.sh", "verify.sh", "build_engines.sh"):
        r = subprocess.run(["bash", "-n", str(bundle / name)], capture_output=True, text=True)
        assert r.returncode == 0, (name, r.stderr)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    r = subprocess.run(["shellcheck", "-S", "warning", *(str(bundle / n) for n in
                        ("install.sh", "verify.sh", "build_engines.sh"))],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stdout


def test_field_yaml_loads_with_the_schema(bundle, tmp_path):
    """The template, with the paths install.sh writes (a user install under tmp_path), loads
    with the services' own schema: an uplink section on ONNX Runtime with a key."""
    from textboost.field.config import load_field_config

    prefix, state = tmp_path / "prefix", tmp_path / "prefix" / "state"
    prefix.mkdir()
    (prefix / "link.key").write_text("ab" * 32 + "\n")
    text = (bundle / "field.yaml").read_text()
    assert "/opt/textboost/link.key" in text and "/var/lib/textboost/drop" in text
    text = text.replace("/opt/textboost/", f"{prefix}/").replace("/var/lib/textboost/", f"{state}/")
    (prefix / "field.yaml").write_text(text)
    cfg = load_field_config(prefix / "field.yaml", need="uplink")
    up = cfg.uplink
    assert up.drop_dir == state / "drop" and up.state_db == state / "uplink.db"
    assert up.codec.backend == "onnxruntime" and up.codec.onnx_dir == prefix / "onnx"
    assert cfg.link_config().auth_key == ("ab" * 32 + "\n").encode()
    assert cfg.downlink is None


def test_recorded_locks_cover_pyproject():
    """export/jetson/requirements-cp3XX.txt (benchmarks/jetson_lock.py, which resolves them
    for aarch64 with pip download): every runtime dependency pinned once, inside
    pyproject's range, nothing the edge leaves out."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+")
    from packaging.requirements import Requirement

    from export.bundle import EDGE_EXCLUDED, PYTHONS, lock_path

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = [Requirement(d) for d in deps if not d.lower().startswith(EDGE_EXCLUDED)]
    for py in PYTHONS:
        lines = [ln for ln in lock_path(py).read_text().splitlines() if ln and ln[0] != "#"]
        pins = dict(ln.split("==") for ln in lines)
        assert len(pins) == len(lines), f"{lock_path(py)}: a package pinned twice"
        for req in wanted:
            name = req.name.lower().replace("_", "-")
            assert name in pins, f"{lock_path(py)}: {name} is not pinned"
            assert req.specifier.contains(pins[name], prereleases=True), (py, name, pins[name])
        assert not {"torch", "constriction", "onnxruntime-gpu"} & set(pins)


def test_bundle_refuses_a_non_empty_folder(bundle):
    from export.bundle import build_bundle

    with pytest.raises(FileExistsError, match="not empty"):
        build_bundle(bundle)


@pytest.mark.slow
@pytest.mark.skipif(PYTHON310 is None, reason="no Python 3.10 here (pyenv install 3.10)")
def test_bundle_installs_on_python310_without_torch_and_verifies(bundle, tmp_path):
    prefix = tmp_path / "prefix"
    env = {
        **os.environ,
        "PREFIX": str(prefix),
        "VENV_FLAGS": "",
        "PYTHON": str(PYTHON310),  # the device's Python (JetPack 6)
        "SKIP_CONSTRICTION": "1",  # as on aarch64
        "SYSTEM_INSTALL": "0",  # no system user or unit on this machine
    }
    env.pop("VIRTUAL_ENV", None)
    r = subprocess.run(["bash", str(bundle / "install.sh")], env=env, capture_output=True,
                       text=True, timeout=1500)  # fmt: skip
    assert r.returncode == 0, (r.stdout[-1500:], r.stderr[-3000:])
    assert "wrote" in r.stdout and "generated" in r.stdout and "uplink serve" in r.stdout
    key = prefix / "link.key"
    assert len(bytes.fromhex(key.read_text().strip())) == 32 and key.stat().st_mode & 0o77 == 0
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
    assert out["providers"] == ["CPUExecutionProvider"]
    assert [p.split()[0] for p in out["onnxruntime_packages"]] == ["onnxruntime"]
    assert {"load", "g_a_h_a", "budget_search_and_coding", "g_s"} <= set(out["seconds"])
    # a second run keeps the operator's field.yaml and key
    (prefix / "field.yaml").write_text((prefix / "field.yaml").read_text() + "# edited\n")
    before = key.read_bytes()
    r = subprocess.run(["bash", str(bundle / "install.sh")], env=env, capture_output=True,
                       text=True, timeout=1500)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "kept" in r.stdout and key.read_bytes() == before
    assert (prefix / "field.yaml").read_text().endswith("# edited\n")
