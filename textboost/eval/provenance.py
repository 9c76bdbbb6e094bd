"""What machine and which library versions produced a result file."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["code_version", "library_versions", "machine_info"]

_PACKAGES = ("Pillow", "pillow-heif", "pillow-jxl-plugin", "imagecodecs", "numpy", "scipy", "torch")


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """CPU model, logical cores, OS and Python of this machine."""
    return {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }


def library_versions() -> dict[str, Any]:
    """Installed package versions (None when absent) and the codec libraries inside them."""
    out: dict[str, Any] = {}
    for pkg in _PACKAGES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    from PIL import features

    for feat in ("jpg", "webp", "avif"):
        out[f"Pillow:{feat}"] = features.version(feat) if features.check(feat) else None
    if features.check("avif"):
        from PIL import _avif

        out["Pillow:avif_codecs"] = _avif.codec_versions()  # e.g. "aom [enc]:3.14.1, dav1d [dec]"
    if out["pillow-heif"]:
        import pillow_heif

        info = pillow_heif.libheif_info()
        out["libheif"] = info.get("libheif")
        out["libheif:encoders"] = info.get("encoders")
    if out["imagecodecs"]:
        import imagecodecs

        out["imagecodecs:libjxl"] = imagecodecs.jpegxl_version()
    return out


def code_version() -> dict[str, Any]:
    """Git commit of the evaluated code and whether the work tree had changes (None: no git)."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "dirty": None}
    return {"git_commit": commit, "dirty": bool(dirty)}
