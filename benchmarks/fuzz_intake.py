"""Intake fuzz: mutated images under hostile names, through the drop folder and the HTTP
intake of a running ``uplink serve``; prints how many went in, what became of them, and how
many times the service exited (the target: none).

Both services run as subprocesses on loopback (tests/field_harness.py; the ground stores
without decoding, so the queue drains). Each item is a seed file (JPEG/PNG/WebP/TIFF with
EXIF, BMP, `.tbx`, and the four files that once stopped the vehicle: a non-UTF-8 name, an
EXIF GPS date 9999:12:31 24:00:00, a 20000x10000 header, a WebP EXIF block that is not
TIFF) with 0-4 random edits (flip a bit, insert or delete bytes, cut the file; three of four
edits land in the first 512 bytes, where headers and EXIF live), under a name that is
plain, or hostile (bytes that are not UTF-8, control characters, 250-255 bytes, odd
suffix case, spaces, ``#``, leading ``-``). A drop-folder item is written as ``NAME.tmp``
and renamed (or written in place); an HTTP item is posted as ``/images/NAME`` with the
name percent-encoded byte by byte (some with ``%00``, ``%2f``, over 255 bytes, or a body
cut short), from ``--clients`` threads at once.

Items go in batches; after each batch the run waits until the service emptied the drop
folder (every file taken or moved to ``rejected/``). Counted: items, HTTP answers by code
(0: no answer), files rejected / encoded / acknowledged (from the event log), service exits
(each restarts the service; its stderr tail is printed), files left in the folder, the
vehicle's peak memory (VmHWM) and CPU time; then ``--big-posts`` posts of 60 MiB at once and
the vehicle's peak memory before and after them; then ``--stalled`` idle connections and the
vehicle's thread count while they are open.

    python benchmarks/fuzz_intake.py [--n 100000] [--seconds S] [--seed 0] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote_from_bytes

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.field_harness import ROOT, Trial, tbx
from tests.intake_inputs import jpeg_with_gps_time, png_header, seeds, webp_with_bad_exif
from textboost.field.eventlog import read_events

SUFFIXES = (".jpg", ".JPG", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".tbx")


def corpus(rng: np.random.Generator) -> list[tuple[str, bytes]]:
    """(suffix, bytes) seeds."""
    out = [(s, d) for s, d in seeds().items()]
    out += [(".tbx", tbx(rng)), (".tbx", tbx(rng, n_groups=1))]
    out += [
        (".jpg", jpeg_with_gps_time("9999:12:31", (24.0, 0.0, 0.0))),
        (".jpg", jpeg_with_gps_time("2026:12:03", (10.0, 0.0, 0.0))),
        (".png", png_header(20000, 10000)),
        (".webp", webp_with_bad_exif()),
    ]
    return out


def mutate(r: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(r.choice((0, 1, 1, 2, 3, 4))):
        if not out:
            break
        head = min(len(out), 512)
        i = r.randrange(head) if r.random() < 0.75 else r.randrange(len(out))
        k = r.random()
        if k < 0.55:
            out[i] ^= 1 << r.randrange(8)
        elif k < 0.75:
            out[i:i] = r.randbytes(r.randint(1, 8))
        elif k < 0.9:
            del out[i : i + r.randint(1, 32)]
        else:
            del out[i:]
    return bytes(out)


def name_bytes(r: random.Random, i: int, suffix: str) -> bytes:
    """A file name as bytes: usually plain, one in three hostile."""
    stem = f"f{i:07d}".encode()
    k = r.random()
    if k < 0.67:
        pass
    elif k < 0.72:
        stem += bytes(r.choice((0x80, 0xC3, 0xFE, 0xFF)) for _ in range(r.randint(1, 4)))
    elif k < 0.77:
        stem += bytes([r.choice([1, 7, 9, 10, 13, 27, 127])]) + b"x"
    elif k < 0.82:
        stem += b"L" * (r.randint(250, 255) - len(stem) - len(suffix))
    elif k < 0.87:
        stem = b"-" + stem + b" #2 \xc3\xa9\xe2\x80\xae"  # dash, space, hash, é, RTL mark
    elif k < 0.92:
        stem += r.choice((b".json", b".tbx", b".tmp", b".jpg"))  # a second suffix
    else:
        stem += r.randbytes(r.randint(1, 12)).replace(b"/", b"_").replace(b"\0", b"_")
    return stem + suffix.encode()


def http_path(r: random.Random, name: bytes) -> str:
    """``/images/`` and the name percent-encoded, sometimes made worse."""
    k = r.random()
    if k < 0.03:
        name = name[:4] + b"\0" + name[4:]
    elif k < 0.05:
        name = b"../" + name
    elif k < 0.07:
        name = name + b"x" * 300
    elif k < 0.08:
        name = b".hidden" + name
    return "/images/" + quote_from_bytes(name, safe="")


def post(port: int, path: str, body: bytes, cut: bool) -> int:
    """One POST on its own connection; returns the status (0: no answer)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
            s.sendall(head.encode() + (body[: len(body) // 2] if cut else body))
            if cut:
                s.shutdown(socket.SHUT_WR)
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    return 0
                data += chunk
            return int(data.split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def proc_threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def proc_stats(pid: int) -> tuple[float, float]:
    """(peak resident MB, CPU seconds) of a live process."""
    hwm = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return hwm, cpu


class LoggedTrial(Trial):
    """The trial with each service's stderr in a file (a pipe nobody reads would fill up
    in a long run and block the service)."""

    def start(self, node: str) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        with open(self.folder / f"{node}.stderr", "ab") as err:
            self.procs[node] = subprocess.Popen(
                [sys.executable, "-m", node, "serve", "--config", str(self.config)],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip

    def stop(self, node: str) -> str:
        p = self.procs.pop(node)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
        return self.stderr_tail(node)

    def stderr_tail(self, node: str) -> str:
        return (self.folder / f"{node}.stderr").read_text(errors="replace")[-2000:]


class Run:
    def __init__(self, folder: Path, args: argparse.Namespace) -> None:
        self.args = args
        self.r = random.Random(args.seed)
        self.seeds = corpus(np.random.default_rng(args.seed))
        self.trial = LoggedTrial(folder, rate_bps=2_000_000)
        port = _tcp_port()
        self.port = port
        text = self.trial.config.read_text().replace(
            "  poll_s:",
            f"  intake: 127.0.0.1:{port}\n  text: false\n  budget: {{rate: 0.3}}\n"
            "  max_in_flight: 8\n  poll_s:",
        )
        self.trial.config.write_text(text.replace("poll_s: 0.05", "poll_s: 0.02"))
        self.drop = folder / "drop"
        self.drop.mkdir()
        self.dropb = os.fsencode(self.drop)
        self.items = Counter()
        self.codes = Counter()
        self.exits: list[str] = []
        self.cpu = 0.0
        self.hwm = 0.0
        self.phase = Counter()

    def start(self) -> None:
        self.trial.start_and_wait("downlink", timeout_s=120)
        self.trial.start_and_wait("uplink", timeout_s=120)

    def check_alive(self) -> None:
        for node in ("uplink", "downlink"):
            p = self.trial.procs[node]
            if p.poll() is not None:
                self.exits.append(f"{node} exit {p.returncode}: {self.trial.stderr_tail(node)}")
                del self.trial.procs[node]
                self.trial.start_and_wait(node, timeout_s=120)

    def item(self, i: int) -> tuple[bytes, bytes, bool]:
        suffix, data = self.r.choice(self.seeds)
        if self.r.random() < 0.1:
            suffix = self.r.choice(SUFFIXES)  # content and suffix disagree
        return name_bytes(self.r, i, suffix), mutate(self.r, data), self.r.random() < 0.5

    def batch(self, start: int, size: int) -> None:
        posts = []
        for i in range(start, start + size):
            name, data, via_http = self.item(i)
            if via_http:
                cut = self.r.random() < 0.03
                posts.append((http_path(self.r, name), data, cut))
                continue
            self.items["drop"] += 1
            target = os.path.join(self.dropb, name)
            if self.r.random() < 0.8:
                tmp = os.path.join(self.dropb, b"w.tmp")
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, target)
            else:
                with open(target, "wb") as f:
                    f.write(data)
        self.items["http"] += len(posts)
        lock = threading.Lock()

        def client(part: list[tuple[str, bytes, bool]]) -> None:
            for path, body, cut in part:
                code = post(self.port, path, body, cut)
                with lock:
                    self.codes[code] += 1

        n = self.args.clients
        threads = [threading.Thread(target=client, args=(posts[k::n],)) for k in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t_post = time.monotonic()
        self.wait_drained()
        self.phase["drain"] += time.monotonic() - t_post

    def big_posts(self, n: int, mib: int) -> dict:
        """``n`` posts of ``mib`` MiB at once: the vehicle's peak memory before and after."""
        pid = self.trial.procs["uplink"].pid
        before = proc_stats(pid)[0]
        body = os.urandom(mib << 20)
        codes: list[int] = []
        threads = [
            threading.Thread(target=lambda k=k: codes.append(
                post(self.port, f"/images/big{k}.jpg", body, False)))
            for k in range(n)
        ]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.wait_drained()
        return {"posts": n, "mib": mib, "codes": sorted(codes),
                "peak_mb_before": round(before, 1),
                "peak_mb_after": round(proc_stats(pid)[0], 1)}  # fmt: skip

    def stalled(self, n: int) -> dict:
        """``n`` connections that send nothing, held 3 s: the vehicle's thread count meanwhile
        (bounded: 8 handlers and their deadline timers), then a real post once they close."""
        pid = self.trial.procs["uplink"].pid
        base = proc_threads(pid)
        socks = []
        for _ in range(n):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))  # completes in the kernel's queue
            socks.append(s)
        peak, end = base, time.monotonic() + 3.0
        while time.monotonic() < end:
            peak = max(peak, proc_threads(pid))
            time.sleep(0.02)
        for s in socks:
            s.close()
        t = time.monotonic()
        code = post(self.port, "/images/after-stall.tbx", self.seeds[5][1], False)
        self.wait_drained()
        return {"connections": n, "threads_before": base, "threads_peak": peak,
                "post_after": code, "post_s": round(time.monotonic() - t, 2)}  # fmt: skip

    def waiting(self) -> int:
        return sum(1 for e in os.scandir(self.dropb) if e.is_file(follow_symlinks=False)
                   and not e.name.startswith(b".") and not e.name.endswith(b".tmp"))  # fmt: skip

    def wait_drained(self, timeout_s: float = 300.0) -> None:
        end = time.monotonic() + timeout_s
        while self.waiting() and time.monotonic() < end:
            self.check_alive()
            time.sleep(0.05)
        self.check_alive()
        rejected = self.drop / "rejected"
        if rejected.exists():  # counted from the log; the files go to keep the disk small
            shutil.rmtree(rejected)
        hwm, cpu = proc_stats(self.trial.procs["uplink"].pid)
        self.hwm = max(self.hwm, hwm)
        self.cpu = max(self.cpu, cpu)

    def events(self) -> Counter:
        c = Counter()
        reasons = Counter()
        for e in read_events(self.trial.folder / "uplink.jsonl"):
            c[e["event"]] += 1
            if e["event"] == "rejected":
                reasons[_reason_class(e["reason"])] += 1
        self.reasons = reasons
        return c


def _reason_class(reason: str) -> str:
    """The reason without the file name and numbers: what kind of refusal."""
    text = reason.split(": ", 1)[1] if ": " in reason else reason
    return re.sub(r"\d+", "N", text)[:44]


def _tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="items to send")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long")
    p.add_argument("--batch", type=int, default=400)
    p.add_argument("--clients", type=int, default=4, help="HTTP clients at once")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--big-posts", type=int, default=4, help="then this many 60 MiB posts at once")
    p.add_argument("--stalled", type=int, default=200, help="then this many idle connections")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    t0, c0 = time.monotonic(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(Path(tmp), args)
        run.start()
        done = 0
        while done < args.n:
            if args.seconds is not None and time.monotonic() - t0 > args.seconds:
                break
            size = min(args.batch, args.n - done)
            run.batch(done, size)
            done += size
            if not args.json:
                print(f"{done} items, {time.monotonic() - t0:.0f} s, exits {len(run.exits)}, "
                      f"load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)  # fmt: skip
        wall = time.monotonic() - t0
        big = run.big_posts(args.big_posts, 60) if args.big_posts else None
        stalled = run.stalled(args.stalled) if args.stalled else None
        left = run.waiting()
        events = run.events()
        errors = run.trial.stop_all()
        out = {
            "items": done,
            "drop": run.items["drop"],
            "http": run.items["http"],
            "http_codes": {str(k): v for k, v in sorted(run.codes.items())},
            "rejected": events["rejected"],
            "captured": events["captured"],
            "encoded": events["encoded"],
            "acked": events["acked"],
            "rejected_by_reason": dict(run.reasons.most_common()),
            "big_posts": big,
            "stalled": stalled,
            "service_exits": len(run.exits),
            "left_in_folder": left,
            "stderr_at_stop": errors.strip()[-2000:],
            "uplink_peak_mb": round(run.hwm, 1),
            "uplink_cpu_s": round(run.cpu, 1),
            "bench_cpu_s": round(time.process_time() - c0, 1),
            "wall_s": round(wall, 1),
            "items_per_s": round(done / wall, 1),
            "drain_wait_s": round(run.phase["drain"], 1),
            "loadavg": os.getloadavg(),
        }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:20s} {v}")
        for e in run.exits:
            print(e)
    return 1 if run.exits else 0


if __name__ == "__main__":
    sys.exit(main())
