"""How images reach the edge service: a drop folder, polled, and a loopback HTTP endpoint that
writes into the same folder (one intake path, one set of rules).

The drop folder convention (docs/field.md): a writer writes ``NAME.tmp`` and renames it to
``NAME`` (an image or `.tbx` suffix, see :data:`~uplink.sources.IMAGE_SUFFIXES`) when
complete; a file is taken only once its size and modification time stayed the same over
one polling interval, so a writer that skips the rename is still safe if it finishes within
it. A sidecar ``NAME-without-suffix.json`` (written before the image) is kept with the
image. Taken files are deleted (or moved to ``taken/``), files that are neither an image nor
a valid `.tbx` are moved to ``rejected/``: the folder never holds a file twice.

Nothing is read whole before it is known to be small enough: :meth:`DropFolder.inspect`
looks at the directory entry (no symbolic links, a regular file, a UTF-8 name, at most
:data:`MAX_FILE_BYTES`) and at the image header (at most
:data:`~textboost.codec.image.MAX_IMAGE_PIXELS`) first. The HTTP intake streams a body to
disk in :data:`CHUNK_BYTES` pieces, serves at most :data:`MAX_CONNECTIONS` connections at
once (more wait in the listen queue), and drops a connection idle for :data:`IDLE_TIMEOUT_S`
or not done within :data:`REQUEST_DEADLINE_S`: its memory is bounded by
``MAX_CONNECTIONS × CHUNK_BYTES`` whatever the clients send.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import stat
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from textboost.capture import MAX_SIDECAR_BYTES
from textboost.codec.image import check_size
from uplink.sources import IMAGE_SUFFIXES

__all__ = [
    "CHUNK_BYTES",
    "IDLE_TIMEOUT_S",
    "MAX_CONNECTIONS",
    "MAX_FILE_BYTES",
    "MAX_NAME_BYTES",
    "REQUEST_DEADLINE_S",
    "DropFolder",
    "HttpIntake",
    "shown",
]

MAX_FILE_BYTES = 64 << 20  # an image or .tbx file (a 64 MP JPEG is ~20-40 MB)
MAX_NAME_BYTES = 250  # a file system's 255, less room for the ".json" of a sidecar
MAX_CONNECTIONS = 8
IDLE_TIMEOUT_S = 10.0
REQUEST_DEADLINE_S = 120.0
CHUNK_BYTES = 64 << 10
_PART_PREFIX, _PART_SUFFIX = ".intake-", ".part"  # a body being received (ignored: dot name)


def shown(name: str) -> str:
    """A file name as text for logs and errors (bytes that are not UTF-8 as ``\\xNN``)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an intake file name (None: it can)."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "the name is not UTF-8"
    if size > MAX_NAME_BYTES:
        return f"the name is {size} bytes, more than {MAX_NAME_BYTES}"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "the name holds a control character"
    return None


class DropFolder:
    """The drop folder (created if missing), polled by :meth:`ready`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._last: dict[str, tuple[int, int]] = {}  # name -> (size, mtime_ns) at last poll

    def ready(self) -> list[Path]:
        """Entries complete by the convention (stable since the previous call), by name.
        Symbolic links and other non-files are listed too, for :meth:`inspect` to refuse."""
        now: dict[str, tuple[int, int]] = {}
        out = []
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:  # removed under us: make it again
            self.folder.mkdir(parents=True, exist_ok=True)
            entries = []
        for entry in entries:
            name = entry.name
            if name.startswith(".") or entry.is_dir(follow_symlinks=False):
                continue
            if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:  # removed meanwhile
                continue
            now[name] = (st.st_size, st.st_mtime_ns)
            if self._last.get(name) == now[name]:
                out.append(Path(entry.path))
        self._last = now
        return sorted(out)

    def inspect(self, path: Path) -> str | None:
        """Why ``path`` is refused before its bytes are read (None: take it): a symbolic
        link or not a regular file, a name that is not UTF-8, over :data:`MAX_FILE_BYTES`,
        empty, or an image whose header is unreadable or over the pixel limit."""
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            return "a symbolic link (refused: only files written into the folder are taken)"
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        if problem := name_problem(path.name):
            return problem
        if st.st_size > MAX_FILE_BYTES:
            return f"{st.st_size} bytes, more than the {MAX_FILE_BYTES} byte limit"
        if st.st_size == 0:
            return "an empty file"
        if path.suffix.lower() == ".tbx":
            return None  # parsed whole by the encode pipeline (size bounded above)
        return _header_problem(path)

    @staticmethod
    def sidecar_of(path: Path) -> Path:
        return path.with_suffix(".json")

    def sidecar(self, path: Path) -> str | None:
        """The sidecar's JSON text (None if there is none; an unreadable, oversized or
        invalid one is kept as ``{"error": ...}`` rather than lost)."""
        side = self.sidecar_of(path)
        try:
            st = os.lstat(side)
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_SIDECAR_BYTES:
                raise ValueError(f"not a regular file of at most {MAX_SIDECAR_BYTES} bytes")
            text = side.read_text(encoding="utf-8")
            json.loads(text)
            return text
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            return json.dumps({"error": f"{shown(side.name)}: {type(exc).__name__}: {exc}"})

    def _move(self, path: Path, sub: str | None) -> None:
        for p in (path, self.sidecar_of(path)):
            if not os.path.lexists(p):
                continue
            if sub is None:
                p.unlink()
            else:
                (self.folder / sub).mkdir(exist_ok=True)
                os.replace(p, self.folder / sub / p.name)  # a link moves as a link
        self._last.pop(path.name, None)

    def taken(self, path: Path, keep: bool = False) -> None:
        """The image is committed to the queue: delete it (``keep``: move it to ``taken/``)."""
        self._move(path, "taken" if keep else None)

    def reject(self, path: Path) -> None:
        """Neither an image nor a valid `.tbx`: move it (and its sidecar) to ``rejected/``."""
        self._move(path, "rejected")


def _header_problem(path: Path) -> str | None:
    """Open the image's header only (Pillow reads no pixels here) and check its size."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            size = im.size
    except Image.DecompressionBombError as exc:  # Pillow's own cap, above ours
        return f"image header: {exc}"
    except Exception as exc:
        return f"not a readable image ({type(exc).__name__}: {exc})"
    try:
        check_size(*size)
    except ValueError as exc:
        return f"image header: {exc}"
    return None


class _Server(ThreadingHTTPServer):
    """At most ``MAX_CONNECTIONS`` handler threads; the accept loop waits for a free one
    (later connections wait in the kernel's listen queue, holding no thread)."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.closing = threading.Event()
        self.errors = 0  # requests that ended in an exception (no traceback is printed)
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        while not self.slots.acquire(timeout=0.2):
            if self.closing.is_set():
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address) -> None:
        self.errors += 1


class HttpIntake:
    """``POST /images/NAME`` (body: the file) on a loopback address writes ``NAME`` into the
    drop folder by the convention; ``NAME.json`` posts a sidecar (send it first). Answers
    201 with ``{"name": NAME}`` once all ``Content-Length`` bytes arrived and are on disk;
    400 for a bad name, suffix or size, or a body cut short (nothing is written); 409 if
    ``NAME`` is already waiting or being posted; 507 if it cannot be written. Runs on its
    own thread until :meth:`close`.

    ``idle_timeout_s`` and ``deadline_s`` (the whole request) default to
    :data:`IDLE_TIMEOUT_S` and :data:`REQUEST_DEADLINE_S`.

    Raises: ValueError if ``host`` is not a loopback address (the endpoint has no
    authentication: it is for processes on the device)."""

    def __init__(
        self,
        host: str,
        port: int,
        drop: DropFolder,
        *,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        deadline_s: float = REQUEST_DEADLINE_S,
    ) -> None:
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"intake {host}:{port}: expected a loopback address (127.0.0.1)")
        self.drop = drop
        self.idle_timeout_s, self.deadline_s = idle_timeout_s, deadline_s
        self.names: set[str] = set()  # files written here (their "captured" source is http)
        self._receiving: set[str] = set()  # names whose body is arriving
        self._lock = threading.Lock()
        for stale in drop.folder.glob(f"{_PART_PREFIX}*{_PART_SUFFIX}"):
            stale.unlink()  # a body cut by a kill: never answered 201
        self.server = _Server((host, port), self._handler())
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def came_by_http(self, name: str) -> bool:
        """Whether ``name`` was written by this intake (asked once per file: forgotten)."""
        with self._lock:
            if name in self.names:
                self.names.discard(name)
                return True
            return False

    def close(self) -> None:
        self.server.closing.set()
        self.server.shutdown()
        self.server.server_close()

    def _reserve(self, name: str) -> bool:
        with self._lock:
            if name in self._receiving or os.path.lexists(self.drop.folder / name):
                return False
            self._receiving.add(name)
            return True

    def _commit(self, part: Path, name: str) -> bool:
        """Rename the received body to ``name`` unless a file of that name appeared."""
        target = self.drop.folder / name
        with self._lock:
            if os.path.lexists(target):
                return False
            os.replace(part, target)
            self.names.add(name)
        fd = os.open(self.drop.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        intake = self

        class Handler(BaseHTTPRequestHandler):
            timeout = intake.idle_timeout_s  # applied to the socket: every read and write

            def setup(self) -> None:
                super().setup()  # the idle timeout is set on the socket here
                # the whole connection ends at the deadline, however slowly bytes trickle
                self._watchdog = threading.Timer(intake.deadline_s, self._expire)
                self._watchdog.daemon = True
                self._watchdog.start()

            def _expire(self) -> None:
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def finish(self) -> None:
                self._watchdog.cancel()
                with contextlib.suppress(OSError):
                    super().finish()

            def log_message(self, *args) -> None:  # the service logs events, not requests
                pass

            def _answer(self, code: int, doc: dict) -> None:
                body = (json.dumps(doc) + "\n").encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client left: nothing to tell it
                    pass
                self.close_connection = True

            def _name(self) -> tuple[str | None, str | None]:
                """(name, None) or (None, the error)."""
                prefix = "/images/"
                if not self.path.startswith(prefix):
                    return None, f"path {self.path!r}: expected /images/NAME"
                try:
                    name = unquote(self.path[len(prefix) :], errors="strict")
                except UnicodeDecodeError:
                    return None, f"path {self.path!r}: the name is not UTF-8"
                if not name or "/" in name or "\\" in name or name.startswith("."):
                    return None, f"path {self.path!r}: expected /images/NAME with a plain name"
                if problem := name_problem(name):
                    return None, f"path {self.path[:80]!r}: {problem}"
                suffix = Path(name).suffix.lower()
                if suffix not in (*IMAGE_SUFFIXES, ".json"):
                    return None, (f"{name}: suffix {suffix!r}, expected one of "
                                  f"{', '.join(IMAGE_SUFFIXES)} or .json")  # fmt: skip
                return name, None

            def do_POST(self) -> None:
                name, error = self._name()
                if name is None:
                    return self._answer(400, {"error": error})
                limit = MAX_SIDECAR_BYTES if name.lower().endswith(".json") else MAX_FILE_BYTES
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    return self._answer(400, {"error": "chunked body: send Content-Length"})
                try:
                    length = int(self.headers.get("Content-Length", ""))
                except ValueError:
                    length = -1
                if not 0 < length <= limit:
                    return self._answer(400, {"error": f"Content-Length {length}: expected "
                                              f"1..{limit}"})  # fmt: skip
                if not intake._reserve(name):
                    self._drain(length)  # so the client reads the answer, not a reset
                    return self._answer(409, {"error": f"{name}: already waiting"})
                try:
                    self._receive(name, length)
                except OSError as exc:  # writing here failed (a full disk): say so
                    self._answer(507, {"error": f"{name}: cannot store it ({exc})"})
                finally:
                    with intake._lock:
                        intake._receiving.discard(name)

            def _drain(self, length: int) -> None:
                with contextlib.suppress(OSError):
                    while length > 0:
                        chunk = self.rfile.read1(min(CHUNK_BYTES, length))
                        if not chunk:
                            return
                        length -= len(chunk)

            def _receive(self, name: str, length: int) -> None:
                """Stream the body into a hidden part file; rename it only when whole."""
                fd, tmp = tempfile.mkstemp(
                    prefix=_PART_PREFIX, suffix=_PART_SUFFIX, dir=intake.drop.folder
                )
                part = Path(tmp)
                got = 0
                try:
                    with os.fdopen(fd, "wb") as f:
                        while got < length:
                            try:
                                chunk = self.rfile.read1(min(CHUNK_BYTES, length - got))
                            except OSError:  # idle past the timeout, reset, or the deadline
                                break
                            if not chunk:
                                break
                            f.write(chunk)
                            got += len(chunk)
                        if got == length:
                            f.flush()
                            os.fsync(f.fileno())
                    if got < length:
                        return self._answer(400, {"error": f"{name}: body cut short, {got} "
                                                  f"of {length} bytes arrived; nothing kept"})
                    if not intake._commit(part, name):
                        return self._answer(409, {"error": f"{name}: already waiting"})
                    return self._answer(201, {"name": name})
                finally:
                    part.unlink(missing_ok=True)

        return Handler
