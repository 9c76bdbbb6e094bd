"""The vehicle's intake under hostile input (issue 22 items 1, 3, 10, 12): files that once
stopped ``uplink serve`` go to ``rejected/`` with an event while every other photo is sent;
the HTTP intake acknowledges only whole bodies, bounds its threads and memory, times out
stalled clients and answers every bad name with a 400."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.field_harness import Trial, tbx
from tests.intake_inputs import jpeg_with_gps_time, png_header, seeds, webp_with_bad_exif
from textboost.bitstream.capture import MetaError
from textboost.capture import capture_for
from textboost.codec.image import load_image
from textboost.field.eventlog import read_events
from uplink.intake import MAX_CONNECTIONS, MAX_FILE_BYTES, DropFolder, HttpIntake


def _vm_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_one_hostile_file_never_stops_the_vehicle(tmp_path):
    """Each file that once made ``uplink serve`` exit 1 at every start, dropped together
    with three good images: those are sent, each hostile one is in ``rejected/`` with an
    event naming why, and the service is still running (and never read the 2 GiB file)."""
    rng = np.random.default_rng(22)
    trial = Trial(tmp_path)
    drop = tmp_path / "drop"
    for i in range(3):
        trial.drop(f"good{i}.tbx", tbx(rng))
    hostile = {
        b"bad\xff\xfe.jpg": jpeg_with_gps_time("2026:12:03", (10.0, 0.0, 0.0)),  # name
        b"gps.jpg": jpeg_with_gps_time("9999:12:31", (24.0, 0.0, 0.0)),  # OverflowError
        b"bomb.png": png_header(20000, 10000),  # DecompressionBombError in the EXIF read
        b"exif.webp": webp_with_bad_exif(),  # SyntaxError
    }
    for name, data in hostile.items():
        (drop / "x.tmp").write_bytes(data)
        os.replace(drop / "x.tmp", os.path.join(os.fsencode(drop), name))
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(jpeg_with_gps_time("2026:12:03", (10.0, 0.0, 0.0)))
    (drop / "link.jpg").symlink_to(outside)
    with open(drop / "huge.jpg", "wb") as f:  # 2 GiB, sparse
        f.truncate(2 << 30)
    trial.start("downlink")
    trial.start("uplink")
    try:
        assert trial.wait_acked(3, timeout_s=40), trial.audit()
        uplink = trial.procs["uplink"]
        assert uplink.poll() is None  # still serving
        assert _vm_peak_mb(uplink.pid) < 1024  # the 2 GiB file was never read whole
    finally:
        errors = trial.stop_all()
    assert errors == ""
    audit = trial.audit()
    assert audit["lost"] == audit["duplicated"] == audit["extra"] == 0
    rejected = sorted(os.listdir(os.fsencode(drop / "rejected")))
    assert rejected == sorted([*hostile, b"huge.jpg", b"link.jpg"])
    assert outside.exists() and (drop / "rejected" / "link.jpg").is_symlink()
    reasons = {
        e["image"]: e["reason"]
        for e in read_events(tmp_path / "uplink.jsonl")
        if e["event"] == "rejected"
    }
    assert "not UTF-8" in reasons["bad\\xff\\xfe.jpg"]
    assert "EXIF: unreadable (OverflowError" in reasons["gps.jpg"]
    assert "image header: Image size (200000000 pixels) exceeds limit" in reasons["bomb.png"]
    assert "EXIF: unreadable (SyntaxError: not a TIFF file" in reasons["exif.webp"]
    assert "a symbolic link" in reasons["link.jpg"]
    assert f"{2 << 30} bytes, more than the {MAX_FILE_BYTES} byte limit" in reasons["huge.jpg"]


def test_a_header_between_our_limit_and_pillows_is_refused_by_ours(tmp_path):
    drop = DropFolder(tmp_path)
    (tmp_path / "big.png").write_bytes(png_header(10000, 8000))  # 80 MP: below Pillow's cap
    assert drop.inspect(tmp_path / "big.png") == (
        "image header: image 10000x8000 (80 MP) exceeds the 67 MP limit"
    )
    (tmp_path / "ok.png").write_bytes(png_header(640, 480))
    assert drop.inspect(tmp_path / "ok.png") is None


# --- the suite's intake fuzz: every mutation is refused with a reason or read cleanly ---

_SEEDS = seeds()


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position, value) edits: flip a byte, insert one, or cut the file."""
    out = bytearray(data)
    for kind, pos, value in edits:
        if not out:
            break
        i = pos % len(out)
        if kind == 0:
            out[i] ^= value or 1
        elif kind == 1:
            out[i:i] = bytes([value])
        else:
            del out[i:]
    return bytes(out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    suffix=st.sampled_from(sorted(_SEEDS)),
    edits=st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 1 << 16), st.integers(0, 255)), max_size=6
    ),
)
def test_mutated_images_are_refused_or_read_never_crash(tmp_path_factory, suffix, edits):
    """The intake path before the codec (the entry check, the EXIF read, the pixel read)
    raises nothing but its documented ValueError on any mutation of a valid image."""
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / f"m{suffix}"
    path.write_bytes(_mutate(_SEEDS[suffix], edits))
    if DropFolder(folder).inspect(path) is not None:
        return  # refused with a reason: goes to rejected/
    try:
        capture_for(path)
        load_image(path)
    except (MetaError, ValueError) as exc:
        assert str(exc).startswith(str(path)), exc  # names the file


# --- the HTTP intake ---


@pytest.fixture
def intake(tmp_path):
    server = HttpIntake("127.0.0.1", 0, DropFolder(tmp_path / "drop"), idle_timeout_s=0.5,
                        deadline_s=5.0)  # fmt: skip
    yield server
    server.close()


def _request(port: int, name: str, body: bytes, length: int | None = None) -> bytes:
    head = f"POST /images/{name} HTTP/1.1\r\nHost: x\r\nContent-Length: "
    return (head + f"{len(body) if length is None else length}\r\n\r\n").encode() + body


def _status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return 0  # closed without an answer
        data += chunk
    return int(data.split()[1])


def _post(port: int, name: str, body: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(_request(port, name, b"", len(body)))
        s.sendall(body)  # not joined to the head: no copy of the body here
        return _status(s)


def test_half_an_upload_is_neither_written_nor_acknowledged(intake):
    """Half of a body, then close (or stall until the idle timeout): no file, no 201."""
    body = os.urandom(100_000)
    with socket.create_connection(("127.0.0.1", intake.port)) as s:
        s.sendall(_request(intake.port, "half.jpg", body[:50_000], len(body)))
        s.shutdown(socket.SHUT_WR)
        assert _status(s) == 400
    with socket.create_connection(("127.0.0.1", intake.port)) as s:
        s.sendall(_request(intake.port, "stall.jpg", body[:50_000], len(body)))
        t0 = time.monotonic()
        assert _status(s) == 400  # the idle timeout ended it
        assert time.monotonic() - t0 < 3
    time.sleep(0.1)
    assert list(intake.drop.folder.iterdir()) == []  # no file, no part file
    assert _post(intake.port, "whole.jpg", body) == 201
    assert (intake.drop.folder / "whole.jpg").read_bytes() == body
    assert intake.server.errors == 0


@pytest.mark.parametrize(
    ("path_name", "why"),
    [
        ("a%00b.jpg", "control character"),
        ("x" * 300 + ".jpg", "more than 250"),
        ("%ff%fe.jpg", "not UTF-8"),
        ("a%0ab.jpg", "control character"),
        ("..%2fup.jpg", "plain name"),
        ("a.jpg.tmp", "suffix"),
    ],
)
def test_bad_names_are_400_not_a_traceback(intake, path_name, why):
    with socket.create_connection(("127.0.0.1", intake.port), timeout=10) as s:
        s.sendall(_request(intake.port, path_name, b"data"))
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.0 400"), data
    assert why in data.split(b"\r\n\r\n", 1)[1].decode()
    assert intake.server.errors == 0 and list(intake.drop.folder.iterdir()) == []


def test_concurrent_posts_of_one_name_one_201_the_rest_409(intake):
    """Four clients post one name at once (headers and half the body each, then the
    rest): one 201, three 409, every client answered, the file is one client's body."""
    bodies = [os.urandom(200_000) for _ in range(4)]
    socks = [socket.create_connection(("127.0.0.1", intake.port), timeout=10) for _ in bodies]
    for s, b in zip(socks, bodies, strict=True):
        s.sendall(_request(intake.port, "same.jpg", b[:100_000], len(b)))
    time.sleep(0.2)
    for s, b in zip(socks, bodies, strict=True):
        s.sendall(b[100_000:])
    codes = [_status(s) for s in socks]
    for s in socks:
        s.close()
    assert sorted(codes) == [201, 409, 409, 409]
    assert (intake.drop.folder / "same.jpg").read_bytes() == bodies[codes.index(201)]
    assert [p.name for p in intake.drop.folder.iterdir()] == ["same.jpg"]
    assert _post(intake.port, "same.jpg", bodies[0]) == 409  # still waiting to be taken


def test_stalled_connections_hold_bounded_threads_and_time_out(intake):
    """40 connections that send nothing: at most MAX_CONNECTIONS handler threads at a
    time, all closed by the idle timeout, and a real post goes through afterwards."""
    before = {t.ident for t in threading.enumerate()}
    stalled = [socket.create_connection(("127.0.0.1", intake.port)) for _ in range(40)]
    peak_handlers = peak_timers = 0
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        # the intake's own threads only: other work in this process may start threads too
        new = [t for t in threading.enumerate() if t.ident not in before]
        handlers = sum("process_request_thread" in t.name for t in new)
        timers = sum(isinstance(t, threading.Timer) for t in new)
        peak_handlers, peak_timers = max(peak_handlers, handlers), max(peak_timers, timers)
        time.sleep(0.01)
    assert 0 < peak_handlers <= MAX_CONNECTIONS  # a handler and its deadline timer each
    assert peak_timers <= MAX_CONNECTIONS
    assert _post(intake.port, "after.jpg", b"x" * 1000) == 201  # waited for a free slot
    for s in stalled:
        s.settimeout(10)
        assert s.recv(100) == b""  # closed by the server, not left open
        s.close()
    assert intake.server.errors == 0


def test_concurrent_large_posts_stream_in_bounded_memory(intake):
    """Four 16 MiB posts at once: the intake holds chunks, not bodies (Python heap peak
    well under one body)."""
    bodies = [os.urandom(16 << 20) for _ in range(4)]
    codes: list[int] = []
    tracemalloc.start()
    try:
        threads = [
            threading.Thread(target=lambda i=i: codes.append(_post(intake.port, f"b{i}.jpg",
                                                                   bodies[i])))
            for i in range(4)
        ]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert codes == [201] * 4
    assert peak < 4 << 20, peak
    for i, b in enumerate(bodies):
        got = (intake.drop.folder / f"b{i}.jpg").read_bytes()
        assert hashlib.sha256(got).digest() == hashlib.sha256(b).digest()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(min_size=1, max_size=300), suffix=st.sampled_from([".jpg", ".tbx", ".x"]))
def test_any_name_gets_an_answer_never_a_dropped_connection(tmp_path_factory, raw, suffix):
    """Any bytes as a percent-encoded name: 201, 400 or 409, every time, no server error;
    a 201 is the exact body under a name that is valid UTF-8."""
    from urllib.parse import quote_from_bytes

    folder = tmp_path_factory.mktemp("names")
    server = HttpIntake("127.0.0.1", 0, DropFolder(folder), idle_timeout_s=2.0)
    try:
        path = quote_from_bytes(raw + suffix.encode(), safe="")
        code = _post(server.port, path, b"body")
        assert code in (201, 400, 409), code
        assert server.server.errors == 0
        written = list(folder.iterdir())
        if code == 201:
            (only,) = written
            assert only.read_bytes() == b"body" and only.name == (raw + suffix.encode()).decode()
        else:
            assert written == []
    finally:
        server.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(min_size=1, max_size=240))
def test_any_drop_folder_name_is_taken_or_refused_with_a_reason(tmp_path_factory, raw):
    folder = tmp_path_factory.mktemp("dropnames")
    name = raw.replace(b"/", b"_").replace(b"\0", b"_").lstrip(b".") or b"x"
    path = Path(os.fsdecode(os.path.join(os.fsencode(folder), name + b".tbx")))
    path.write_bytes(b"not a tbx")
    drop = DropFolder(folder)
    assert drop.ready() == [] and drop.ready() == [path]  # stable over one poll
    problem = drop.inspect(path)
    try:
        name.decode("utf-8")
        utf8 = not any(c < 32 or c == 127 for c in name)
    except UnicodeDecodeError:
        utf8 = False
    assert (problem is None) == utf8, problem
    drop.reject(path)
    assert os.listdir(folder) == ["rejected"]
