"""``python -m export bundle --target jetson --out DIR``: what a Jetson-class sender needs.

    DIR/
      README.md                 steps on the device, and what is not verified
      bundle.json               model id, target, SHA-256 of every file
      wheels/textboost_link-*.whl   the project (no torch in its requirements)
      model/<model>.safetensors     the codec (+ its card, + fusion weights if any)
      onnx/                     sender.onnx, receiver.onnx[, fusion.onnx], textboost-onnx.json
      requirements-jetson-cp310.txt, -cp311, -cp312   pinned aarch64 wheels for JetPack 6
                                (Python 3.10), Debian 12 (3.11) and JetPack 7 (3.12)
      install.sh                venv, the pinned wheels, the link key, field.yaml, the unit
      field.yaml                the field service's config (uplink section), a template
      textboost-uplink.service  systemd unit: ``uplink serve --config field.yaml``
      verify.sh                 ``uplink verify``: stage times, PSNR, the ONNX Runtime used
      build_engines.sh          TensorRT engines on the device (python -m export trt)

Engines are never shipped: they belong to one GPU and TensorRT version
(``build_engines.sh`` makes them on the device). docs/deploy.md is the owner's guide.
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

__all__ = ["TARGETS", "build_bundle", "build_wheel", "lock_path", "requirements"]

TARGETS = ("jetson",)
REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("textboost", "uplink", "downlink", "link_sim", "export")
INSTALL_ROOT = "/opt/textboost"  # install.sh's default PREFIX (root); PREFIX=... moves it
STATE_ROOT = "/var/lib/textboost"  # the unit's StateDirectory=textboost
UNIT = "textboost-uplink.service"
# what the edge does not install from pyproject's dependencies (see REQUIREMENTS_HEAD)
EDGE_EXCLUDED = ("constriction", "torch")
LOCK_DIR = REPO / "export" / "jetson"
PYTHONS = ("3.10", "3.11", "3.12")  # JetPack 6, Debian 12 (the emulated rehearsal), JetPack 7

REQUIREMENTS_HEAD = """\
# JetPack 6 (Ubuntu 22.04, aarch64, Python 3.10) or JetPack 7 (Python 3.12): install.sh
# installs the file for its Python with --no-deps (this is the whole closure), then the
# project wheel. No torch: the sender runs the ONNX graphs. Pinned: resolved for aarch64
# (manylinux2014 .. manylinux_2_28) by benchmarks/jetson_lock.py from pyproject.toml.
#
# ONNX Runtime: the PyPI wheel for aarch64 is CPU only. For the Jetson GPU, NVIDIA's
# onnxruntime-gpu wheel for your JetPack: `ORT=gpu ORT_GPU_WHEEL=... install.sh` installs
# it *instead of* the onnxruntime line below (never both: they share the module), and
# `verify.sh DEVICE=cuda` reports the provider that ran.
# TensorRT: comes with JetPack (apt: python3-libnvinfer); it is not on PyPI for aarch64.
# The venv is made with --system-site-packages so that it sees it; `TENSORRT=1 install.sh`
# adds cuda-python, which the TensorRT backend needs for its memory copies.
#
# constriction (the entropy coder) is not listed: it has x86_64 wheels only and no source
# archive on PyPI. install.sh installs its wheel where there is one, builds it from
# CONSTRICTION_SRC if given (Rust + crates.io needed), and otherwise the codec uses its
# portable coder (textboost.codec.portable_coder), which writes the same bitstream.
"""


def lock_path(python: str) -> Path:
    """The recorded aarch64 resolution for ``python`` ("3.10" or "3.12")."""
    return LOCK_DIR / f"requirements-cp{python.replace('.', '')}.txt"


def requirements(python: str) -> str:
    """requirements-jetson-cp3XX.txt: the recorded lock (benchmarks/jetson_lock.py), with notes."""
    return REQUIREMENTS_HEAD + lock_path(python).read_text()


INSTALL_SH = """\
#!/usr/bin/env bash
# Install the TextBoost sender, the field service `uplink serve`, from this bundle.
#
#   sudo bash install.sh                      # into {root}: needs root (it also adds the
#                                             # system user textboost and the systemd unit)
#   PREFIX=$HOME/textboost bash install.sh    # a user install: no root, no unit
#
# Environment:
#   PYTHON=python3       3.10 (JetPack 6), 3.11 or 3.12 (JetPack 7): picks requirements-jetson-cp3XX
#   ORT=cpu              onnxruntime: cpu (PyPI's wheel, in the requirements) or gpu, with
#   ORT_GPU_WHEEL=W      NVIDIA's onnxruntime_gpu wheel (file or URL) for this JetPack;
#                        one of the two is installed, never both (docs/deploy.md)
#   TENSORRT=1           also cuda-python ($CUDA_PYTHON) for the TensorRT backend
#   KEY_FILE=F           use this link key (e.g. the ground's) instead of generating one
#   SKIP_CONSTRICTION=1  no constriction (the portable coder writes the same bitstream)
#   VENV_FLAGS=...       python -m venv flags (default --system-site-packages: JetPack's TensorRT)
#   SYSTEM_INSTALL=0     as root, still a user install (no system user, no unit)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
DEFAULT_PREFIX={root}
PREFIX="${{PREFIX:-$DEFAULT_PREFIX}}"
PYTHON="${{PYTHON:-python3}}"
ORT="${{ORT:-cpu}}"
CUDA_PYTHON="${{CUDA_PYTHON:-cuda-python>=12.2,<13}}"
say() {{ echo "install.sh: $*"; }}
die() {{ echo "install.sh: $*" >&2; exit 2; }}

SYSTEM="${{SYSTEM_INSTALL:-$([ "$(id -u)" = 0 ] && echo 1 || echo 0)}}"
if [ "$SYSTEM" = 1 ]; then
  STATE_DIR={state}
else
  [ "$PREFIX" != "$DEFAULT_PREFIX" ] || die "$PREFIX and the systemd unit need root: \\
sudo bash install.sh; or a user install without the unit: PREFIX=\\$HOME/textboost bash install.sh"
  STATE_DIR="$PREFIX/state"
fi
case "$ORT" in
  cpu) ;;
  gpu) [ -n "${{ORT_GPU_WHEEL:-}}" ] || die "ORT=gpu needs ORT_GPU_WHEEL=<NVIDIA's \\
onnxruntime_gpu wheel for your JetPack> (docs/deploy.md)" ;;
  *) die "ORT=$ORT: expected cpu or gpu" ;;
esac
PYV="$("$PYTHON" -c 'import sys; print("%d%d" % sys.version_info[:2])')"
REQ="$HERE/requirements-jetson-cp$PYV.txt"
[ -f "$REQ" ] || die "$PYTHON is Python $PYV; expected 3.10 (JetPack 6), 3.11 or 3.12 (JetPack 7)"

mkdir -p "$PREFIX"
"$PYTHON" -m venv ${{VENV_FLAGS---system-site-packages}} "$PREFIX/venv"
PY="$PREFIX/venv/bin/python"
PIP=("$PY" -m pip)
# the pinned closure, without resolving again; the GPU build replaces the onnxruntime line
if [ "$ORT" = gpu ]; then
  grep -v '^onnxruntime==' "$REQ" > "$PREFIX/requirements.txt"
else
  cp "$REQ" "$PREFIX/requirements.txt"
fi
"${{PIP[@]}}" install -q --no-deps -r "$PREFIX/requirements.txt"
if [ "$ORT" = gpu ]; then
  "${{PIP[@]}}" uninstall -q -y onnxruntime >/dev/null 2>&1 || true
  "${{PIP[@]}}" install -q --no-deps "$ORT_GPU_WHEEL"
else
  "${{PIP[@]}}" uninstall -q -y onnxruntime-gpu >/dev/null 2>&1 || true
fi
say "onnxruntime: $ORT build"
if [ -n "${{TENSORRT:-}}" ]; then
  "${{PIP[@]}}" install -q "$CUDA_PYTHON"
  say "cuda-python installed for the TensorRT backend ($CUDA_PYTHON)"
fi
if [ -n "${{SKIP_CONSTRICTION:-}}" ]; then
  say "constriction: skipped; the portable coder codes the same bitstream"
elif "${{PIP[@]}}" install -q --only-binary :all: "constriction>=0.4,<0.6" 2>/dev/null; then
  say "constriction: wheel installed"
elif [ -n "${{CONSTRICTION_SRC:-}}" ]; then
  "${{PIP[@]}}" install -q maturin && "${{PIP[@]}}" install --no-build-isolation "$CONSTRICTION_SRC"
else
  say "constriction: no wheel for $(uname -m); the portable coder codes the same bitstream"
fi
"${{PIP[@]}}" install -q --no-deps --force-reinstall "$HERE"/wheels/*.whl
rm -rf "$PREFIX/model" "$PREFIX/onnx"
cp -r "$HERE/model" "$HERE/onnx" "$PREFIX/"

# the link key: pre-shared with the ground station (its link.key_file, the same key_id)
KEY="$PREFIX/link.key"
if [ -n "${{KEY_FILE:-}}" ]; then
  install -m 600 "$KEY_FILE" "$KEY"
  say "link key: $KEY from $KEY_FILE"
elif [ ! -s "$KEY" ]; then
  (umask 077; "$PY" -c "import secrets; print(secrets.token_hex(32))" > "$KEY")
  say "link key: generated $KEY; copy it to the ground station (link.key_file there)"
fi
# field.yaml: written once; an operator's edited file is kept
if [ ! -f "$PREFIX/field.yaml" ]; then
  sed -e "s#{root}/#$PREFIX/#g" -e "s#{state}/#$STATE_DIR/#g" "$HERE/field.yaml" \\
    > "$PREFIX/field.yaml"
  say "wrote $PREFIX/field.yaml: set uplink.peer to the ground station"
else
  say "kept $PREFIX/field.yaml"
fi
"$PY" -c "import sys; from textboost.field.config import load_field_config as f; \\
f(sys.argv[1], need='uplink')" "$PREFIX/field.yaml" || die "fix $PREFIX/field.yaml"

if [ "$SYSTEM" = 1 ]; then
  id -u textboost >/dev/null 2>&1 || useradd --system --home-dir {state} \\
    --shell /usr/sbin/nologin textboost
  chown root:textboost "$KEY" && chmod 640 "$KEY"
  mkdir -p /etc/systemd/system
  sed -e "s#{root}/#$PREFIX/#g" "$HERE/{unit}" > /etc/systemd/system/{unit}
  if command -v systemctl >/dev/null && systemctl daemon-reload 2>/dev/null; then
    say "unit installed; start it: systemctl enable --now {unit}"
  else
    say "unit written to /etc/systemd/system/{unit} (no running systemd here)"
  fi
else
  mkdir -p "$STATE_DIR"
  say "run it: $PY -m uplink serve --config $PREFIX/field.yaml"
fi
say "installed into $PREFIX; check it: bash $HERE/verify.sh"
"""

VERIFY_SH = """\
#!/usr/bin/env bash
# Encode and decode a shipped image with text on this device: stage times, the PSNR, and
# which ONNX Runtime build and execution providers ran (DEVICE=cuda: the GPU build).
set -euo pipefail
PREFIX="${{PREFIX:-{root}}}"
exec "$PREFIX/venv/bin/python" -m uplink verify --model "$PREFIX/model/{model}" \\
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

FIELD_YAML = """\
# field.yaml of the vehicle: `python -m uplink serve --config field.yaml` (docs/field.md has
# every key). install.sh writes it to PREFIX once (your edits are kept) with its paths.
# Before the first start: set uplink.peer to the ground station, and copy link.key there
# (its link.key_file, the same key_id): the link section must equal the ground's.
link:
  mtu_bytes: 256
  arq: deferred
  rto_s: 10.0               # > round trip + time to drain the NAKed frames at rate_bps
  nak_timeout_s: 10.0
  max_retries: 8
  key_file: {root}/link.key   # made by install.sh (or KEY_FILE=...)
  key_id: 1
  tag_bytes: 8

uplink:
  drop_dir: {state}/drop       # the camera writes NAME.tmp, then renames it to NAME.jpg
  intake: 127.0.0.1:8470       # or HTTP POST /images/NAME (loopback only; null: off)
  state_db: {state}/uplink.db  # the queue: survives a kill or power cut
  event_log: {state}/uplink.jsonl
  peer: 192.0.2.10:9000        # CHANGE: the ground's downlink.listen, as seen from here
  rate_bps: 9600
  budget: {{max_bytes: 2000}}    # or {{bpp: 0.05}} or {{rate: 0.3}}
  text: true
  codec:
    model: {root}/model/{model}
    backend: onnxruntime       # tensorrt after build_engines.sh (TENSORRT=1 install.sh)
    onnx_dir: {root}/onnx
    device: cpu                # cuda with NVIDIA's onnxruntime-gpu (ORT=gpu install.sh)
"""

SERVICE = """\
[Unit]
Description=TextBoost uplink: the edge field service (drop folder to the narrow link)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=textboost
Group=textboost
# {state}: created (owned by textboost) at start; queue, event log, drop folder, cache
StateDirectory=textboost
StateDirectoryMode=0770
# group-writable drop folder: add the camera's user to group textboost
UMask=0007
WorkingDirectory={state}
Environment=TEXTBOOST_CACHE={state}/cache
Environment=TEXTBOOST_ORT_THREADS=4
ExecStart={root}/venv/bin/python -m uplink serve --config {root}/field.yaml
Restart=always
RestartSec=5
# exit 2 is a bad field.yaml or a missing model/graph (one line in the journal): fix it,
# then systemctl restart; anything else (a crash, a kill) restarts
RestartPreventExitStatus=2
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
"""

README = """\
# TextBoost sender bundle ({target})

Model `{model}` (id `{model_id}`), ONNX opset {opset}, built {built}.

On the device (JetPack 6: Python 3.10; JetPack 7: Python 3.12):

    sudo bash install.sh             # venv in {root}, link.key, field.yaml, the unit
    sudo nano {root}/field.yaml      # uplink.peer: the ground station; copy link.key there
    bash verify.sh                   # encode + decode a shipped image: times, PSNR, provider
    sudo systemctl enable --now {unit}
    journalctl -u {unit} -f          # and {state}/uplink.jsonl, the event log

Without root: `PREFIX=$HOME/textboost bash install.sh` (no unit; it prints the command).
GPU: `sudo ORT=gpu ORT_GPU_WHEEL=<NVIDIA's onnxruntime_gpu wheel> bash install.sh`, then
`DEVICE=cuda bash verify.sh` and `device: cuda` in field.yaml. TensorRT: `TENSORRT=1` at
install (cuda-python), then `bash build_engines.sh` and `backend: tensorrt`.

The camera writes each photo as `{state}/drop/NAME.tmp` and renames it to `NAME.jpg`
when complete (or POSTs it to http://127.0.0.1:8470/images/NAME.jpg); a sidecar
`NAME.json` written before the image (`{{"time": ..., "lat": ..., "lon": ...}}`) or the
photo's EXIF GPS gives each image its place and time. docs/deploy.md says more.

Checked where the bundle was built (x86_64): the install into a fresh Python 3.10 venv
without torch and without constriction, and `verify` on ONNX Runtime CPU; and on emulated
aarch64 (qemu, Debian 12 with CPython 3.10 built for it, JetPack 6's Python, and with
Debian's 3.11): this install.sh as root, verify.sh, and streams that decode to the same
latents on both architectures (benchmarks/jetson_rehearsal.py).
Not checked: a real Jetson, onnxruntime-gpu, TensorRT, and systemd running the unit.
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
    fmt = {"root": INSTALL_ROOT, "state": STATE_ROOT, "unit": UNIT, "model": model.path.name}
    files = {
        **{f"requirements-jetson-cp{py.replace('.', '')}.txt": requirements(py)
           for py in PYTHONS},
        "install.sh": INSTALL_SH.format(**fmt),
        "verify.sh": VERIFY_SH.format(**fmt),
        "build_engines.sh": ENGINES_SH.format(**fmt),
        "field.yaml": FIELD_YAML.format(**fmt),
        UNIT: SERVICE.format(**fmt),
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
