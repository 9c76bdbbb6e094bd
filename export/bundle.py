"""``python -m export bundle --target jetson --out DIR``: what a Jetson-class sender needs.

    DIR/
      README.md                 steps on the device, and what is not verified
      bundle.json               model id, target, SHA-256 of every file
      wheels/textboost_link-*.whl   the project (no torch in its requirements)
      model/<model>.safetensors     the codec (+ its card, + fusion weights if any)
      onnx/                     sender.onnx, receiver.onnx[, fusion.onnx], textboost-onnx.json
      requirements-jetson.txt   what pip installs on JetPack 6 (aarch64, Python 3.10)
      install.sh                venv, constriction, the wheel
      build_engines.sh          TensorRT engines on the device (python -m export trt)
      verify.sh                 python -m export verify on ONNX Runtime (CPU unless told)
      textboost-sender.service  systemd unit for the sender
      sender.env                its configuration (link, budget, backend, folders)

Engines are never shipped: they belong to one GPU and TensorRT version
(``build_engines.sh`` makes them on the device).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from textboost.codec.exported import META_FILE, export_command, read_export
from textboost.codec.weights import ModelFile, fusion_path

__all__ = ["TARGETS", "build_bundle", "build_wheel"]

TARGETS = ("jetson",)
REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("textboost", "uplink", "downlink", "link_sim", "export")
INSTALL_ROOT = "/opt/textboost"

REQUIREMENTS_HEAD = """\
# JetPack 6 (Ubuntu 22.04, aarch64, Python 3.10): `bash install.sh` installs these, then
# the project wheel without its dependencies. No torch: the sender runs the ONNX graphs.
#
# ONNX Runtime: the PyPI wheel for aarch64 is CPU only. For the Jetson GPU, install
# NVIDIA's build of onnxruntime-gpu for your JetPack (the Jetson AI Lab pip index / the
# Jetson Zoo list NVIDIA's wheels), then run verify.sh with DEVICE=cuda.
# TensorRT: comes with JetPack (apt: python3-libnvinfer, nvidia-tensorrt); it is not on
# PyPI for aarch64. The venv is made with --system-site-packages so that it sees it.
# cuda-python (pip) is needed for the TensorRT backend's memory copies.
#
# constriction (the entropy coder) is not listed: it has x86_64 wheels only and no source
# archive on PyPI. install.sh installs its wheel where there is one, builds it from
# CONSTRICTION_SRC if given (Rust + crates.io needed), and otherwise the codec uses its
# portable coder (textboost.codec.portable_coder), which writes the same bitstream.
"""


def requirements() -> str:
    """The project's runtime dependencies (pyproject.toml) less constriction, with notes."""
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    keep = [d for d in deps if not d.lower().startswith(("constriction", "torch"))]
    return REQUIREMENTS_HEAD + "\n".join(keep) + "\n"


INSTALL_SH = """\
#!/usr/bin/env bash
# Install the sender into $PREFIX/venv (default {root}). Run from the bundle folder.
# SKIP_CONSTRICTION=1 installs no constriction (as on aarch64 without a source build).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PREFIX="${{PREFIX:-{root}}}"
PYTHON="${{PYTHON:-python3}}"
mkdir -p "$PREFIX"
"$PYTHON" -m venv ${{VENV_FLAGS---system-site-packages}} "$PREFIX/venv"
PIP="$PREFIX/venv/bin/pip"
"$PIP" install -q -r "$HERE/requirements-jetson.txt"
if [ -n "${{SKIP_CONSTRICTION:-}}" ]; then
  echo "constriction: skipped; the portable coder codes the same bitstream"
elif "$PIP" install -q --only-binary :all: "constriction>=0.4,<0.6"; then
  echo "constriction: wheel installed"
elif [ -n "${{CONSTRICTION_SRC:-}}" ]; then
  "$PIP" install -q maturin && "$PIP" install --no-build-isolation "$CONSTRICTION_SRC"
else
  echo "constriction: no wheel for $(uname -m); the portable coder codes the same bitstream"
fi
"$PIP" install -q --no-deps "$HERE"/wheels/*.whl
cp -r "$HERE/model" "$HERE/onnx" "$PREFIX/"
echo "installed into $PREFIX; next: bash $HERE/verify.sh"
"""

VERIFY_SH = """\
#!/usr/bin/env bash
# Encode and decode a shipped image on the device; prints stage times and the PSNR.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PREFIX="${{PREFIX:-{root}}}"
exec "$PREFIX/venv/bin/python" -m export verify --model "$PREFIX/model/{model}" \\
  --onnx-dir "$PREFIX/onnx" --backend "${{BACKEND:-onnxruntime}}" --device "${{DEVICE:-cpu}}" "$@"
"""

ENGINES_SH = """\
#!/usr/bin/env bash
# TensorRT engines for this device (fp16 and fp32), cached by GPU, TensorRT version,
# precision and shape profile under ~/.cache/textboost/trt (TEXTBOOST_CACHE to move it).
set -euo pipefail
PREFIX="${{PREFIX:-{root}}}"
exec "$PREFIX/venv/bin/python" -m export trt --model "$PREFIX/model/{model}" \\
  --onnx "$PREFIX/onnx" --precision "${{PRECISION:-both}}" --max-size "${{MAX_SIZE:-1088x1920}}"
# (the trtexec equivalent, for one graph: trtexec --onnx=$PREFIX/onnx/sender.onnx --fp16
#  --minShapes=x:1x3x64x64 --optShapes=x:1x3x768x1024 --maxShapes=x:1x3x1088x1920
#  --saveEngine=sender-fp16.engine)
"""

SENDER_ENV = """\
# textboost-sender configuration (EnvironmentFile of textboost-sender.service)
TEXTBOOST_MODEL={root}/model/{model}
TEXTBOOST_ONNX_DIR={root}/onnx
TEXTBOOST_BACKEND=onnxruntime
TEXTBOOST_DEVICE=cpu
# the ground receiver and the link
GROUND=192.0.2.10:9000
MAX_BYTES=1500
RATE_BPS=9600
# folders
INBOX=/var/lib/textboost/inbox
CACHE_DIR=/var/lib/textboost/cache
TEXTBOOST_CACHE=/var/lib/textboost/cache
TEXTBOOST_ORT_THREADS=2
"""

SERVICE = """\
[Unit]
Description=TextBoost edge sender (images with small text over a narrow link)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
EnvironmentFile={root}/sender.env
WorkingDirectory=/var/lib/textboost
ExecStartPre=/bin/mkdir -p ${{INBOX}} ${{CACHE_DIR}}
ExecStart={root}/venv/bin/python -m uplink send ${{INBOX}} --to ${{GROUND}} \\
  --max-bytes ${{MAX_BYTES}} --rate-bps ${{RATE_BPS}} --cache-dir ${{CACHE_DIR}} \\
  --model ${{TEXTBOOST_MODEL}} --backend ${{TEXTBOOST_BACKEND}} \\
  --onnx-dir ${{TEXTBOOST_ONNX_DIR}} --device ${{TEXTBOOST_DEVICE}}
Restart=on-failure
RestartSec=10

[Install]
WantedBy=multi-user.target
"""

README = """\
# TextBoost sender bundle ({target})

Model `{model}` (id `{model_id}`), ONNX opset {opset}, built {built}.

On the device (JetPack 6, Python 3.10):

    bash install.sh                  # venv in {root}, constriction, the project wheel
    bash verify.sh                   # encode + decode a shipped image: stage times, PSNR
    bash build_engines.sh            # optional: TensorRT engines for this GPU
    BACKEND=tensorrt DEVICE=cuda bash verify.sh
    sudo cp textboost-sender.service /etc/systemd/system/ && sudo cp sender.env {root}/
    sudo systemctl enable --now textboost-sender

See requirements-jetson.txt for where the GPU onnxruntime, TensorRT and constriction
come from on aarch64. Without constriction the codec codes with its portable coder (the
same bytes, in pure Python).

Checked where the bundle was built (x86_64): the install into a fresh venv without torch
and without constriction, and `verify` on ONNX Runtime CPU. Not checked there: an aarch64
device, onnxruntime-gpu, TensorRT, and systemd itself (the unit's `uplink send` options
`--model/--backend/--onnx-dir/--device` are tested against the uplink command line).
"""


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def build_wheel(dest: Path) -> Path:
    """The project wheel, built from a copy of its sources (nothing written in the repo)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(REPO / name, src / name)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        for pkg in PACKAGES:
            shutil.copytree(REPO / pkg, src / pkg, ignore=ignore)
        dest.mkdir(parents=True, exist_ok=True)
        # Offline when this environment can build it (setuptools present), else isolated.
        isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation,
               "-q", "-w", str(dest), str(src)]  # fmt: skip
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"wheel build failed: {r.stderr.strip()[-500:]}")
    wheels = sorted(dest.glob("textboost_link-*.whl"))
    if not wheels:
        raise RuntimeError(f"wheel build wrote no wheel into {dest}")
    return wheels[-1]


def build_bundle(
    out: str | Path,
    *,
    target: str = "jetson",
    model_path: str | Path | None = None,
    onnx_dir: str | Path | None = None,
    constriction_src: str | Path | None = None,
) -> dict:
    """Write the bundle; exports the ONNX graphs first unless ``onnx_dir`` has them."""
    if target not in TARGETS:
        raise ValueError(f"target {target!r}: expected one of {', '.join(TARGETS)}")
    model = ModelFile.load(model_path)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: not empty; give a new folder")
    out.mkdir(parents=True, exist_ok=True)
    onnx_out = out / "onnx"
    if onnx_dir is None:
        from export.onnx import export_onnx

        export_onnx(model.path, onnx_out)
    else:
        meta = read_export(onnx_dir, model.model_id, model.path)
        onnx_out.mkdir()
        for p in [*meta["paths"].values(), Path(onnx_dir) / META_FILE]:
            shutil.copy(p, onnx_out / p.name)
    meta = read_export(onnx_out, model.model_id, model.path)  # what ships is checked
    (out / "model").mkdir()
    shutil.copy(model.path, out / "model" / model.path.name)
    for extra in (model.path.with_suffix(".md"), fusion_path(model.path)):
        if extra.is_file():
            shutil.copy(extra, out / "model" / extra.name)
    build_wheel(out / "wheels")
    if constriction_src is not None:
        ignore = shutil.ignore_patterns(".git", "target", "__pycache__")
        shutil.copytree(constriction_src, out / "constriction-src", ignore=ignore)
    fmt = {"root": INSTALL_ROOT, "model": model.path.name}
    files = {
        "requirements-jetson.txt": requirements(),
        "install.sh": INSTALL_SH.format(**fmt),
        "verify.sh": VERIFY_SH.format(**fmt),
        "build_engines.sh": ENGINES_SH.format(**fmt),
        "sender.env": SENDER_ENV.format(**fmt),
        "textboost-sender.service": SERVICE.format(**fmt),
        "README.md": README.format(
            target=target, model_id=model.model_id.hex(), opset=meta["opset"],
            built=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), **fmt,
        ),
    }  # fmt: skip
    for name, text in files.items():
        (out / name).write_text(text)
        if name.endswith(".sh"):
            os.chmod(out / name, 0o755)
    manifest = {
        "target": target,
        "model_id": model.model_id.hex(),
        "model_file": model.path.name,
        "onnx_export": export_command(model.path),
        "files": {
            str(p.relative_to(out)): _sha256(p)
            for p in sorted(out.rglob("*"))
            if p.is_file() and "constriction-src" not in p.parts
        },
    }
    (out / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return {**manifest, "dir": str(out)}
