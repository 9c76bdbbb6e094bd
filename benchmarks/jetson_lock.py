"""Resolve the Jetson bundle's requirements for aarch64 and record them (needs the network).

    python benchmarks/jetson_lock.py [--python 3.10 3.11 3.12] [--write]

For each Python version (3.10: JetPack 6; 3.11: Debian 12, the emulated rehearsal; 3.12:
JetPack 7), ``pip download`` resolves the project's runtime dependencies (pyproject.toml,
less torch and constriction: see export/bundle.py) for aarch64 (manylinux2014 ..
manylinux_2_28) with binary wheels only, into a temporary folder, and prints every wheel
it took (name, version, tag, size). ``--write`` records the
resolution as ``export/jetson/requirements-cp3XX.txt`` (``name==version`` lines), the
bundle's ``requirements-jetson-cp3XX.txt``; tests/test_export_bundle.py checks the
recorded files against pyproject.toml without the network.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from export.bundle import EDGE_EXCLUDED, LOCK_DIR, PYTHONS, lock_path  # noqa: E402

PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64")
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<tag>.+)\.whl$")


def runtime_requirements() -> list[str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return [d for d in deps if not d.lower().startswith(EDGE_EXCLUDED)]


def resolve(python: str, reqs: list[str], dest: Path) -> list[dict]:
    """pip download for aarch64 + this Python; one dict per wheel taken."""
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
           "--python-version", python, "--implementation", "cp", "-d", str(dest),
           *(a for p in PLATFORMS for a in ("--platform", p)), *reqs]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"pip download for cp{python} aarch64 failed:\n{r.stderr[-3000:]}")
    wheels = []
    for p in sorted(dest.glob("*.whl")):
        m = _WHEEL.match(p.name)
        if m is None:
            raise SystemExit(f"{p.name}: not a wheel name")
        name = m["name"].lower().replace("_", "-")
        wheels.append({"name": name, "version": m["version"], "tag": m["tag"],
                       "mb": p.stat().st_size / 1e6})  # fmt: skip
    return wheels


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", nargs="+", default=list(PYTHONS))
    ap.add_argument("--write", action="store_true", help="record the locks under export/jetson")
    args = ap.parse_args(argv)
    reqs = runtime_requirements()
    for py in args.python:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            wheels = resolve(py, reqs, Path(tmp))
        dt = time.perf_counter() - t0
        total = sum(w["mb"] for w in wheels)
        print(f"cp{py.replace('.', '')} aarch64: {len(wheels)} wheels, {total:.1f} MB, "
              f"resolved in {dt:.0f} s")  # fmt: skip
        for w in wheels:
            print(f"  {w['name']}=={w['version']}  {w['tag']}  {w['mb']:.1f} MB")
        if args.write:
            out = lock_path(py)
            LOCK_DIR.mkdir(parents=True, exist_ok=True)
            head = (f"# aarch64 (manylinux2014 and later), CPython {py}: resolved by "
                    f"benchmarks/jetson_lock.py on {time.strftime('%Y-%m-%d')}\n")  # fmt: skip
            out.write_text(head + "".join(f"{w['name']}=={w['version']}\n" for w in wheels))
            print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
