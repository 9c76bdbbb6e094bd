"""The Jetson bundle on emulated aarch64 (qemu user mode), and cross-architecture exactness.

    python benchmarks/jetson_rehearsal.py [--root DIR] [--onnx-dir D] [--out FILE] [--quick]

1. An arm64 root (Debian bookworm, Python 3.11, made with mmdebstrap; cached in ``--root``,
   default ``$JETSON_ROOT`` or /var/cache/textboost-rehearsal/bookworm-arm64; the registry
   here serves no Ubuntu ports, so JetPack 6's Ubuntu 22.04 / Python 3.10 is not available).
   Needs root, ``qemu-user-static`` and ``mmdebstrap``, and the qemu-aarch64 binfmt handler
   (registered from /usr/lib/binfmt.d/qemu-aarch64.conf when missing).
2. The bundle (``python -m export bundle``) installed there by its own ``install.sh``, as
   root, as on a device: aarch64 wheels from PyPI (the recorded cp311 lock), no
   constriction wheel (the portable coder), the system user and the unit; then
   ``verify.sh`` (``uplink verify``) on ONNX Runtime CPU.
3. A fixed set (Kodak crops and scene-text photos, text on) encoded at fixed budgets on
   aarch64 and here (x86_64); every stream decoded on both: the entropy-decoded latents
   must be identical (mismatches counted), the pixels compared (max difference, PSNR).

Writes ``results/jetson_rehearsal_emulated.json`` (versions, counts, emulated timings).
``--quick`` (the test): one Kodak crop at one budget, no verify, and where the root already
has an install, only this tree's wheel, model and graphs replace it (not install.sh again).
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
    """/proc, /dev and the resolver inside the root while it is used; unmounted after."""

    def __init__(self, root: Path) -> None:
        self.root, self.mounted = root, []

    def __enter__(self) -> Chroot:
        for src, kind in (("/proc", "proc"), ("/dev", "bind")):
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
        py_version = ch.run(["python3", "--version"])[0].stdout.strip()
        qemu = run(["qemu-aarch64-static", "--version"]).stdout.splitlines()[0]
        if args.quick and (args.root / PREFIX.lstrip("/") / "venv/bin/python").exists():
            # the test: the installed pins stay, this tree's wheel, model and graphs replace
            r, timings["install_s"] = ch.run(["bash", "-c", QUICK_UPDATE.format(
                inside=inside, prefix=PREFIX)])  # fmt: skip
        else:
            r, timings["install_s"] = ch.run(["bash", f"{inside}/bundle/install.sh"])
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
        "root": {"distro": "Debian bookworm arm64 (mmdebstrap)", "python": py_version},
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
