"""The Jetson bundle on emulated aarch64 (qemu user mode), and cross-architecture exactness.

    python benchmarks/jetson_rehearsal.py [--python 3.10|3.11] [--cpython-src SRC]
        [--root DIR] [--onnx-dir D] [--out FILE] [--quick]

1. An arm64 root (Debian bookworm, made with mmdebstrap; cached in ``--root``, default
   ``$JETSON_ROOT`` or /var/cache/textboost-rehearsal/bookworm-arm64; the registry here
   serves no Ubuntu ports, so JetPack 6's Ubuntu 22.04 is not available). Needs root,
   ``qemu-user-static`` and ``mmdebstrap``, and the qemu-aarch64 binfmt handler (registered
   from /usr/lib/binfmt.d/qemu-aarch64.conf when missing).
2. The Python: ``--python 3.10`` (the default: JetPack 6's) is CPython 3.10, which Debian
   does not package, cross-compiled once from a source tarball or tree (``--cpython-src``,
   default the newest ``Python-3.10.*`` in /var/cache/textboost-rehearsal/src) with Debian's
   ``gcc-aarch64-linux-gnu`` against the root's own -dev packages, installed in the root as
   /opt/python3.10 and reused after; ``--python 3.11`` is bookworm's python3.
3. The bundle (``python -m export bundle``) installed there by its own ``install.sh``
   (``PYTHON=`` that interpreter), as root, as on a device: aarch64 wheels from PyPI (the
   recorded cp310 or cp311 lock), no constriction wheel (the portable coder), the system
   user and the unit; then ``verify.sh`` (``uplink verify``) on ONNX Runtime CPU.
4. A fixed set (Kodak crops and scene-text photos, text on) encoded at fixed budgets on
   aarch64 and here (x86_64); every stream decoded on both: the entropy-decoded latents
   must be identical (mismatches counted), the pixels compared (max difference, PSNR).

Writes ``--out`` (``results/jetson_rehearsal_emulated_py310.json`` and ``..._emulated.json``
for 3.11: versions, counts, emulated timings). ``--quick`` (the test): one Kodak crop at one
budget, no verify, and where the root already has an install on that Python, only this
tree's wheel, model and graphs replace it (not install.sh again).
The same file is the worker that runs inside the root (``--worker encode|decode``), on the
installed package only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
DEFAULT_ROOT = Path(os.environ.get("JETSON_ROOT", "/var/cache/textboost-rehearsal/bookworm-arm64"))
MIRROR = "http://deb.debian.org/debian"
PACKAGES = "python3,python3-venv,ca-certificates,libgl1,libglib2.0-0,libgomp1,passwd"
BINFMT = Path("/proc/sys/fs/binfmt_misc")
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
CHROOT_CA = "/etc/ssl/certs/host-ca-bundle.crt"
PREFIX = "/opt/textboost"  # install.sh's default, as on a device
PY310 = "/opt/python3.10"  # JetPack 6's Python, built for the root (Debian has no 3.10)
SRC_CACHE = DEFAULT_ROOT.parent / "src"  # where Python-3.10.*.tar.* (or a tree) is looked for
# the root's libraries that CPython's stdlib modules link (ssl, sqlite3, ctypes, lzma, ...)
BUILD_DEPS = ("libc6-dev", "libssl-dev", "zlib1g-dev", "libffi-dev", "libsqlite3-dev",
              "libbz2-dev", "liblzma-dev", "libreadline-dev", "libncurses-dev", "uuid-dev",
              "libgdbm-dev")  # fmt: skip
# stdlib modules a build can silently leave out when a library is missing: checked each run
STDLIB_CHECK = ("ssl", "sqlite3", "ctypes", "lzma", "zlib", "bz2", "hashlib", "readline",
                "uuid", "_decimal", "pyexpat", "ensurepip", "venv")  # fmt: skip
# (name, source, crop y0:y1, x0:x1): Kodak texture and scene text (plates, rendered text)
IMAGES = [
    ("kodim23", "kodak/kodim23.png", (200, 392, 300, 556)),
    ("plate_eu1", "scenetext/openalpr_eu/eu1.jpg", (260, 452, 340, 660)),
    ("plate_eu2", "scenetext/openalpr_eu/eu2.jpg", (130, 322, 50, 370)),
    ("kodim23_text", "link_sim:kodak_text/kodim23_text.png", (256, 448, 192, 512)),
]
BUDGETS = (600, 1500)
QUICK_UPDATE = """set -e
{prefix}/venv/bin/python -m pip install -q --no-deps --force-reinstall {inside}/bundle/wheels/*.whl
rm -rf {prefix}/model {prefix}/onnx && cp -r {inside}/bundle/model {inside}/bundle/onnx {prefix}/
echo "updated the project wheel, model and graphs in {prefix} (pins as installed before)"
"""


# ---- the worker: runs on either architecture with the installed package (no torch) ----


def _codec(model: str, onnx_dir: str):
    from textboost import Pipeline

    return Pipeline.load(model, backend="onnxruntime", device="cpu", onnx_dir=onnx_dir)


def worker_encode(args) -> dict:
    from textboost.codec.image import load_image

    codec = _codec(args.model, args.onnx_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for png in sorted(Path(args.inputs).glob("*.png")):
        img = load_image(png)
        for budget in args.budgets:
            w0, c0 = time.perf_counter(), time.process_time()
            data = codec.encode_to_budget(img, max_bytes=budget, text=True)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            name = f"{png.stem}_b{budget}.tbx"
            (out / name).write_bytes(data)
            rows.append({"stream": name, "bytes": len(data), "max_bytes": budget,
                         "sha256": hashlib.sha256(data).hexdigest(),
                         "wall_s": round(wall, 3), "cpu_s": round(cpu, 3)})  # fmt: skip
    return {"env": _env(), "streams": rows}


def worker_decode(args) -> dict:
    import numpy as np

    codec = _codec(args.model, args.onnx_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for tbx in sorted(Path(args.inputs).glob("*.tbx")):
        data = tbx.read_bytes()
        w0, c0 = time.perf_counter(), time.process_time()
        _, y = codec.codec.decode_latents(data)
        pixels = codec.decode(data)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        np.save(out / f"{tbx.stem}.npy", pixels)
        rows.append({"stream": tbx.name, "latents_sha256": hashlib.sha256(y.tobytes()).hexdigest(),
                     "latents_shape": list(y.shape), "pixels": f"{tbx.stem}.npy",
                     "wall_s": round(wall, 3), "cpu_s": round(cpu, 3)})  # fmt: skip
    return {"env": _env(), "decodes": rows}


def _env() -> dict:
    from importlib import metadata

    from textboost.codec import coder

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {"machine": platform.machine(), "python": platform.python_version(),
            "onnxruntime": version("onnxruntime"), "numpy": version("numpy"),
            "rapidocr-onnxruntime": version("rapidocr-onnxruntime"),
            "entropy_coder": "portable" if coder.PORTABLE else "constriction"}  # fmt: skip


# ---- the host side: root, bundle, install, runs, comparison ----


def run(cmd: list[str], timeout: float = 3600, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout[-2000:]}\n"
                         f"{r.stderr[-3000:]}")  # fmt: skip
    return r


def ensure_binfmt() -> str:
    """The qemu-aarch64 handler, so that aarch64 programs (and their children) run."""
    if (BINFMT / "qemu-aarch64").is_file():
        return "present"
    conf = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
    if not conf.is_file():
        raise SystemExit("no qemu-aarch64 binfmt entry: apt-get install qemu-user-static")
    if not (BINFMT / "register").exists():
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)])
    (BINFMT / "register").write_text(conf.read_text().strip())
    return "registered from " + str(conf)


def build_root(root: Path) -> None:
    if (root / "usr/bin/python3").exists():
        return
    if shutil.which("mmdebstrap") is None:
        raise SystemExit("mmdebstrap is not installed: apt-get install mmdebstrap")
    root.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    run(["nice", "-n", "10", "mmdebstrap", "--arch=arm64", "--variant=apt",
         f"--include={PACKAGES}", "bookworm", str(root), MIRROR], timeout=7200)  # fmt: skip
    print(f"arm64 root built in {time.perf_counter() - t0:.0f} s: {root}", file=sys.stderr)


class Chroot:
    """/proc, /dev, /sys and the resolver inside the root while it is used; unmounted after.
    /sys as on a device: onnxruntime 1.23 (the cp310 pin) aborts at its first session where
    cpuinfo cannot read /sys/devices/system/cpu/possible ("Attempt to use DefaultLogger")."""

    def __init__(self, root: Path) -> None:
        self.root, self.mounted = root, []

    def __enter__(self) -> Chroot:
        for src, kind in (("/proc", "proc"), ("/dev", "bind"), ("/sys", "bind")):
            dst = self.root / src.lstrip("/")
            dst.mkdir(exist_ok=True)
            if kind == "proc":
                run(["mount", "-t", "proc", "proc", str(dst)])
            else:
                run(["mount", "--bind", src, str(dst)])
            self.mounted.append(dst)
        shutil.copy("/etc/resolv.conf", self.root / "etc/resolv.conf")
        # this host's CA bundle (a TLS-inspecting proxy may sit between it and PyPI)
        shutil.copy(HOST_CA, self.root / CHROOT_CA.lstrip("/"))
        return self

    def __exit__(self, *exc) -> None:
        for dst in reversed(self.mounted):
            subprocess.run(["umount", "-l", str(dst)], check=False)

    def run(self, argv: list[str], timeout: float = 7200, env: dict | None = None):
        base = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME": "/root", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
                "TEXTBOOST_ORT_THREADS": "1", "PIP_CERT": CHROOT_CA,
                "SSL_CERT_FILE": CHROOT_CA}  # fmt: skip
        cmd = ["nice", "-n", "10", "chroot", str(self.root), "env", "-i",
               *(f"{k}={v}" for k, v in {**base, **(env or {})}.items()), *argv]  # fmt: skip
        t0 = time.perf_counter()
        r = run(cmd, timeout=timeout)
        return r, time.perf_counter() - t0


def _micro(path: Path) -> int:
    """3.10.N's N from a name such as Python-3.10.6.tar.xz (-1 when absent)."""
    tail = path.name.split("3.10.", 1)[-1]
    digits = "".join(c for c in tail[:3] if c.isdigit()) if "3.10." in path.name else ""
    return int(digits) if digits else -1


def cpython_source(given: Path | None) -> Path:
    """A CPython 3.10 source: the given tarball or tree, else the newest in SRC_CACHE."""
    if given is not None:
        if not given.exists():
            raise SystemExit(f"--cpython-src {given}: no such file or folder")
        return given
    found = sorted((p for p in SRC_CACHE.glob("Python-3.10.*") if _micro(p) >= 0), key=_micro)
    if not found:
        raise SystemExit(
            f"no CPython 3.10 source in {SRC_CACHE}: put Python-3.10.N.tar.xz (python.org) or "
            "a CPython v3.10.N tree there, or pass --cpython-src; or run --python 3.11")
    return found[-1]


def build_python() -> str:
    """An x86_64 python3.10, which CPython's cross build runs for its own build steps (a
    pyenv shim on PATH may not run one: each candidate is asked its version)."""
    candidates = [shutil.which("python3.10"),
                  *map(str, sorted(Path.home().glob(".pyenv/versions/3.10.*/bin/python3.10")))]
    for exe in filter(None, candidates):
        r = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2] == (3, 10))"],
                           capture_output=True, text=True)  # fmt: skip
        if r.stdout.strip() == "True":
            return exe
    raise SystemExit("a cross build of CPython 3.10 needs a python3.10 on this host "
                     "(e.g. pyenv install 3.10)")  # fmt: skip


def sysroot_links(root: Path, dest: Path) -> Path:
    """The root's lib*.so links that point at absolute paths (/lib/...), as links into the
    root: seen from this host they dangle, and the linker would take the static .a instead
    (which cannot go into a shared module: readline and _curses failed so)."""
    dest.mkdir(parents=True, exist_ok=True)
    for link in (root / "usr/lib/aarch64-linux-gnu").glob("lib*.so"):
        target = os.readlink(link) if link.is_symlink() else ""
        if target.startswith("/"):
            mine = dest / link.name
            mine.unlink(missing_ok=True)
            mine.symlink_to(root / target.lstrip("/"))
    return dest


def ffi_include_dir(tree: Path, root: Path) -> None:
    """Point the build at the root's ffi.h, which Debian keeps in the multiarch folder
    (usr/include/aarch64-linux-gnu): configure takes pkg-config's usr/include, where setup.py
    finds no ffi.h and builds _ctypes without libffi (``undefined symbol: ffi_prep_cif``)."""
    ffi_h = next(iter(sorted((root / "usr/include").glob("**/ffi.h"))), None)
    makefile = tree / "Makefile"
    if ffi_h is None:
        raise SystemExit(f"no ffi.h under {root}/usr/include: apt-get install libffi-dev there")
    lines = makefile.read_text().splitlines(keepends=True)
    want = f"LIBFFI_INCLUDEDIR=\t{ffi_h.parent}\n"
    at = next(i for i, line in enumerate(lines) if line.startswith("LIBFFI_INCLUDEDIR="))
    if lines[at] != want:
        lines[at] = want
        makefile.write_text("".join(lines))
        # the build's sysconfig data and _ctypes are made again from the corrected Makefile
        (tree / "pybuilddir.txt").unlink(missing_ok=True)
        for built in tree.glob("build/lib.*/_ctypes*.so"):
            built.unlink()


def ensure_python310(ch: Chroot, src: Path | None) -> dict:
    """CPython 3.10 in the root at PY310 (JetPack 6's Python; Debian packages none):
    cross-compiled on this host, once, with Debian's gcc-aarch64-linux-gnu against the root's
    own libraries (its -dev packages installed there by apt), then installed into the root."""
    root = ch.root
    info_file = root / PY310.lstrip("/") / "textboost-build.json"
    if info_file.is_file():
        return json.loads(info_file.read_text())
    cc = "aarch64-linux-gnu-gcc"
    if shutil.which(cc) is None:
        raise SystemExit(f"{cc} is not installed: apt-get install gcc-aarch64-linux-gnu")
    src = cpython_source(src)
    t0 = time.perf_counter()
    ch.run(["sh", "-c", "apt-get update -qq && apt-get install -y -q --no-install-recommends "
            + " ".join(BUILD_DEPS)], env={"DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
    build = root.parent / "build"
    build.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        tree = src
    else:
        with tarfile.open(src) as tar:
            top = tar.getnames()[0].split("/")[0]
            tree = build / top
            if not (tree / "configure").is_file():
                tar.extractall(build)
    version = next(line.split('"')[1] for line in
                   (tree / "Include/patchlevel.h").read_text().splitlines()
                   if line.startswith("#define PY_VERSION "))  # fmt: skip
    if not version.startswith("3.10."):
        raise SystemExit(f"{src}: CPython {version}, expected 3.10.N")
    sysroot, lib = str(root), f"{root}/usr/lib/aarch64-linux-gnu"
    links = sysroot_links(root, build / "sysroot-links")
    (tree / "config.site").write_text("ac_cv_file__dev_ptmx=yes\nac_cv_file__dev_ptc=no\n")
    bpy = build_python()
    env = {**os.environ, "PATH": f"{Path(bpy).parent}:{os.environ['PATH']}",
           "CONFIG_SITE": str(tree / "config.site"),
           "CC": f"{cc} --sysroot={sysroot}", "CXX": f"aarch64-linux-gnu-g++ --sysroot={sysroot}",
           "AR": "aarch64-linux-gnu-ar", "RANLIB": "aarch64-linux-gnu-ranlib",
           "READELF": "aarch64-linux-gnu-readelf",
           "CPPFLAGS": f"-I{root}/usr/include -I{root}/usr/include/aarch64-linux-gnu",
           "LDFLAGS": f"-L{links} -L{lib} -Wl,-rpath-link,{lib}",
           "PKG_CONFIG_LIBDIR": f"{lib}/pkgconfig:{root}/usr/share/pkgconfig",
           "PKG_CONFIG_SYSROOT_DIR": sysroot}  # fmt: skip
    configure = ["./configure", "--host=aarch64-linux-gnu", "--build=x86_64-linux-gnu",
                 f"--prefix={PY310}", "--with-ensurepip=no", "--enable-ipv6",
                 "--with-system-ffi"]  # fmt: skip
    steps = {"configure": configure, "make": ["make", "-j", str(os.cpu_count() or 1)],
             "install": ["make", "install", f"DESTDIR={root}"]}  # fmt: skip
    if (tree / "Makefile").is_file() and (tree / "textboost-configure.log").is_file():
        del steps["configure"]  # configured by an earlier run: make goes on from there
    for name, step in steps.items():
        if name == "make":
            ffi_include_dir(tree, root)
        log = tree / f"textboost-{name}.log"
        with log.open("w") as f:
            r = subprocess.run(["nice", "-n", "10", *step], cwd=tree, env=env, stdout=f,
                               stderr=subprocess.STDOUT, timeout=7200)  # fmt: skip
        if r.returncode != 0:
            raise SystemExit(f"CPython cross build failed ({' '.join(step)}): see {log}\n"
                             + log.read_text()[-3000:])  # fmt: skip
    stdlib_check(ch, f"{PY310}/bin/python3.10")  # a module left out is a failed build
    gcc = run([cc, "--version"]).stdout.splitlines()[0]
    digest = hashlib.sha256(src.read_bytes()).hexdigest() if src.is_file() else None
    info = {"version": version, "source": str(src), "source_sha256": digest, "prefix": PY310,
            "built": f"cross-compiled on {platform.machine()} with {gcc}, "
                     f"--host=aarch64-linux-gnu, against the root's libraries",
            "configure": " ".join(configure[1:]), "build_python": bpy,
            "build_s": round(time.perf_counter() - t0)}  # fmt: skip
    info_file.write_text(json.dumps(info, indent=2) + "\n")
    print(f"CPython {version} built for aarch64 in {info['build_s']} s: {root}{PY310}",
          file=sys.stderr)  # fmt: skip
    return info


def stdlib_check(ch: Chroot, python: str) -> dict:
    """Import the stdlib modules a build may have left out, under emulation; fails if any is."""
    code = f"""import importlib, json, platform, sys
bad = {{}}
for m in {list(STDLIB_CHECK)!r}:
    try:
        importlib.import_module(m)
    except Exception as e:
        bad[m] = repr(e)
ssl, sqlite3 = sys.modules.get("ssl"), sys.modules.get("sqlite3")
print(json.dumps({{"version": platform.python_version(), "machine": platform.machine(),
                  "failed": bad, "openssl": ssl and ssl.OPENSSL_VERSION,
                  "sqlite": sqlite3 and sqlite3.sqlite_version}}))
"""
    result = json.loads(ch.run([python, "-c", code], timeout=600)[0].stdout)
    if result["failed"]:
        raise SystemExit(f"{python} in the root lacks stdlib modules: {result['failed']}")
    return result


def venv_python(venv: Path) -> str | None:
    """The X.Y of the Python a venv was made with (its pyvenv.cfg), None without one."""
    cfg = venv / "pyvenv.cfg"
    if not cfg.is_file():
        return None
    for line in cfg.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            return ".".join(value.strip().split(".")[:2])
    return None


def prepare_inputs(dest: Path, quick: bool) -> list[str]:
    import numpy as np
    from PIL import Image

    from textboost.codec.image import load_image

    dest.mkdir(parents=True, exist_ok=True)
    names = []
    for name, src, (y0, y1, x0, x1) in IMAGES[:1] if quick else IMAGES:
        path = (REPO / "link_sim" / "data" / src[9:]) if src.startswith("link_sim:") else (
            SHARED / src)  # fmt: skip
        crop = np.ascontiguousarray(load_image(path)[y0:y1, x0:x1])
        Image.fromarray(crop).save(dest / f"{name}.png")
        names.append(name)
    return names


def host_worker(mode: str, inputs: Path, out: Path, model: str, onnx_dir: str, budgets) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TEXTBOOST_ORT_THREADS": "1",
           "PYTHONPATH": str(REPO)}  # fmt: skip
    cmd = ["nice", "-n", "10", sys.executable, __file__, "--worker", mode, "--inputs",
           str(inputs), "--out", str(out), "--model", model, "--onnx-dir", onnx_dir,
           "--budgets", *map(str, budgets)]  # fmt: skip
    return json.loads(run(cmd, env=env).stdout)


def compare(work: Path, enc: dict, dec: dict) -> dict:
    """Latents and pixels of every stream decoded on both architectures."""
    import numpy as np

    from textboost.codec.image import load_image, psnr_db

    by_arch = {a: {d["stream"]: d for d in dec[a]["decodes"]} for a in dec}
    rows, mismatches = [], 0
    for origin in enc:  # the encoder's architecture
        for s in enc[origin]["streams"]:
            name = s["stream"]
            a, x = by_arch["aarch64"][f"{origin}/{name}"], by_arch["x86_64"][f"{origin}/{name}"]
            same = a["latents_sha256"] == x["latents_sha256"]
            mismatches += not same
            pa = np.load(work / "dec" / "aarch64" / origin / a["pixels"])
            px = np.load(work / "dec" / "x86_64" / origin / x["pixels"])
            src = load_image(work / "inputs" / (name.rsplit("_b", 1)[0] + ".png"))
            rows.append({"encoder": origin, "stream": name, "bytes": s["bytes"],
                         "latents_identical": same,
                         "pixels_identical": bool(np.array_equal(pa, px)),
                         "pixels_max_abs_diff": int(np.abs(pa.astype(int) - px).max()),
                         "psnr_on_aarch64_db": round(float(psnr_db(src, pa)), 3),
                         "psnr_on_x86_64_db": round(float(psnr_db(src, px)), 3)})  # fmt: skip
    return {"rows": rows, "latent_mismatches": mismatches}


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return round(xs[len(xs) // 2], 3) if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", choices=["encode", "decode"])
    ap.add_argument("--inputs")
    ap.add_argument("--model")
    ap.add_argument("--onnx-dir")
    ap.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--work", type=Path, help="work folder (default: a new one under /tmp)")
    ap.add_argument("--out", help="worker: output folder; host: the results JSON")
    ap.add_argument("--quick", action="store_true", help="one crop, one budget, no verify")
    ap.add_argument("--python", choices=["3.10", "3.11"], default="3.10",
                    help="3.10: JetPack 6's, built for the root; 3.11: Debian bookworm's")
    ap.add_argument("--cpython-src", type=Path,
                    help=f"CPython 3.10 tarball or tree (default: newest in {SRC_CACHE})")
    args = ap.parse_args(argv)
    if args.worker:
        result = (worker_encode if args.worker == "encode" else worker_decode)(args)
        print(json.dumps(result))
        return 0

    if os.geteuid() != 0:
        raise SystemExit("needs root (chroot, mounts, binfmt)")
    t_start = time.perf_counter()
    binfmt = ensure_binfmt()
    build_root(args.root)
    budgets = BUDGETS[:1] if args.quick else BUDGETS
    import tempfile

    work = args.work or Path(tempfile.mkdtemp(prefix="jetson-rehearsal-"))
    work.mkdir(parents=True, exist_ok=True)
    from export.bundle import build_bundle
    from textboost.codec.weights import ModelFile

    model = ModelFile.load(None)
    onnx_dir = args.onnx_dir
    if onnx_dir is None:
        from export.onnx import export_onnx

        onnx_dir = str(work / "onnx")
        export_onnx(None, onnx_dir)
    inside = Path("/tmp/rehearsal")  # the work folder as the root sees it
    host_inside = args.root / inside.relative_to("/")
    if host_inside.exists():
        shutil.rmtree(host_inside)
    host_inside.mkdir(parents=True)
    build_bundle(host_inside / "bundle", target="jetson", onnx_dir=onnx_dir)
    prepare_inputs(host_inside / "inputs", args.quick)
    shutil.copy(__file__, host_inside / "worker.py")
    timings: dict[str, float] = {}
    with Chroot(args.root) as ch:
        if args.python == "3.10":
            python_build, interp = ensure_python310(ch, args.cpython_src), f"{PY310}/bin/python3.10"
        else:
            python_build, interp = {"origin": "Debian bookworm's python3 package"}, "python3"
        stdlib = stdlib_check(ch, interp)
        venv = args.root / PREFIX.lstrip("/") / "venv"
        if venv_python(venv) not in (None, args.python):
            shutil.rmtree(venv)  # another Python's venv: install.sh makes it anew (key kept)
        qemu = run(["qemu-aarch64-static", "--version"]).stdout.splitlines()[0]
        if args.quick and venv_python(venv) == args.python:
            # the test: the installed pins stay, this tree's wheel, model and graphs replace
            r, timings["install_s"] = ch.run(["bash", "-c", QUICK_UPDATE.format(
                inside=inside, prefix=PREFIX)])  # fmt: skip
        else:
            r, timings["install_s"] = ch.run(["bash", f"{inside}/bundle/install.sh"],
                                             env={"PYTHON": interp})  # fmt: skip
        install_log = r.stdout.strip().splitlines()
        verify = None
        if not args.quick:
            r, timings["verify_s"] = ch.run(["bash", f"{inside}/bundle/verify.sh", "--json",
                                             "--image", f"{inside}/inputs/{IMAGES[-1][0]}.png",
                                             "--max-bytes", "1500"])  # fmt: skip
            verify = json.loads(r.stdout)
        py = f"{PREFIX}/venv/bin/python"
        m, o = f"{PREFIX}/model/{model.path.name}", f"{PREFIX}/onnx"
        r, timings["encode_aarch64_s"] = ch.run(
            [py, f"{inside}/worker.py", "--worker", "encode", "--inputs", f"{inside}/inputs",
             "--out", f"{inside}/enc/aarch64", "--model", m, "--onnx-dir", o,
             "--budgets", *map(str, budgets)])  # fmt: skip
        enc = {"aarch64": json.loads(r.stdout)}
        t0 = time.perf_counter()
        enc["x86_64"] = host_worker("encode", host_inside / "inputs",
                                    host_inside / "enc" / "x86_64", str(model.path), onnx_dir,
                                    budgets)  # fmt: skip
        timings["encode_x86_64_s"] = time.perf_counter() - t0
        dec = {"aarch64": {"decodes": []}, "x86_64": {"decodes": []}}
        for origin in enc:
            r, dt = ch.run([py, f"{inside}/worker.py", "--worker", "decode", "--inputs",
                            f"{inside}/enc/{origin}", "--out", f"{inside}/dec/aarch64/{origin}",
                            "--model", m, "--onnx-dir", o])  # fmt: skip
            timings[f"decode_{origin}_on_aarch64_s"] = dt
            d = json.loads(r.stdout)
            dec["aarch64"]["env"] = d["env"]
            dec["aarch64"]["decodes"] += [{**x, "stream": f"{origin}/{x['stream']}"}
                                          for x in d["decodes"]]  # fmt: skip
            t0 = time.perf_counter()
            d = host_worker("decode", host_inside / "enc" / origin,
                            host_inside / "dec" / "x86_64" / origin, str(model.path), onnx_dir,
                            budgets)  # fmt: skip
            timings[f"decode_{origin}_on_x86_64_s"] = time.perf_counter() - t0
            dec["x86_64"]["env"] = d["env"]
            dec["x86_64"]["decodes"] += [{**x, "stream": f"{origin}/{x['stream']}"}
                                         for x in d["decodes"]]  # fmt: skip
    cmp = compare(host_inside, enc, dec)
    streams = {a: {s["stream"]: s for s in enc[a]["streams"]} for a in enc}
    identical = sum(streams["aarch64"][n]["sha256"] == streams["x86_64"][n]["sha256"]
                    for n in streams["aarch64"])  # fmt: skip
    steady = {}
    for arch in enc:
        per = [s["cpu_s"] for s in enc[arch]["streams"]][1:]  # after the first (model loads)
        steady[f"encode_cpu_s_median_{arch}"] = _median(per)
        steady[f"decode_cpu_s_median_{arch}"] = _median(
            [d["cpu_s"] for d in dec[arch]["decodes"]][1:])
    result = {
        "what": "Jetson bundle on emulated aarch64 (qemu user mode) and cross-arch exactness",
        "emulated": True,
        "machine": f"{platform.machine()} host, {os.cpu_count()} cores, shared; load "
                   + Path("/proc/loadavg").read_text().split()[0],
        "qemu": qemu, "binfmt": binfmt,
        "root": {"distro": "Debian bookworm arm64 (mmdebstrap)", "python": stdlib["version"],
                 "python_build": python_build, "stdlib": stdlib},
        "versions": {"aarch64": enc["aarch64"]["env"], "x86_64": enc["x86_64"]["env"]},
        "install_log": install_log,
        "verify_emulated": {k: v for k, v in (verify or {}).items() if k != "_decoded"},
        "images": [n for n, *_ in (IMAGES[:1] if args.quick else IMAGES)],
        "budgets": list(budgets),
        "counts": {"streams": sum(len(e["streams"]) for e in enc.values()),
                   "stream_pairs": len(streams["aarch64"]),
                   "stream_pairs_byte_identical": identical,
                   "decodes": 2 * len(cmp["rows"]),
                   "cross_decodes": len(cmp["rows"]),  # each stream on the other architecture
                   "latent_mismatches": cmp["latent_mismatches"],
                   "pixel_mismatches": sum(not r["pixels_identical"] for r in cmp["rows"])},
        "streams": {a: enc[a]["streams"] for a in enc},
        "cross": cmp["rows"],
        "steady_state_emulated": steady,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "total_s": round(time.perf_counter() - t_start, 1),
    }  # fmt: skip
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0 if cmp["latent_mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
