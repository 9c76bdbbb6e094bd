"""How images reach the edge service: a drop folder, polled, and a loopback HTTP endpoint that
writes into the same folder (one intake path, one set of rules).

The drop folder convention (docs/field.md): a writer writes ``NAME.tmp`` and renames it to
``NAME`` (an image or `.tbx` suffix, see :data:`~uplink.sources.IMAGE_SUFFIXES`) when
complete; a file is taken only once its size and modification time stayed the same over
one polling interval, so a writer that skips the rename is still safe if it finishes within
it. A sidecar ``NAME-without-suffix.json`` (written before the image) is kept with the
image. Taken files are deleted (or moved to ``taken/``), files that are neither an image nor
a valid `.tbx` are moved to ``rejected/``: the folder never holds a file twice.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from textboost.field.durable import write_durably
from uplink.sources import IMAGE_SUFFIXES

__all__ = ["MAX_POST_BYTES", "DropFolder", "HttpIntake"]

MAX_POST_BYTES = 64 << 20


class DropFolder:
    """The drop folder (created if missing), polled by :meth:`ready`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._last: dict[str, tuple[int, int]] = {}  # name -> (size, mtime_ns) at last poll

    def ready(self) -> list[Path]:
        """Files complete by the convention (stable since the previous call), by name."""
        now: dict[str, tuple[int, int]] = {}
        out = []
        for entry in os.scandir(self.folder):
            name = entry.name
            if name.startswith(".") or not entry.is_file():
                continue
            if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            st = entry.stat()
            now[name] = (st.st_size, st.st_mtime_ns)
            if self._last.get(name) == now[name]:
                out.append(Path(entry.path))
        self._last = now
        return sorted(out)

    @staticmethod
    def sidecar_of(path: Path) -> Path:
        return path.with_suffix(".json")

    def sidecar(self, path: Path) -> str | None:
        """The sidecar's JSON text (None if there is none; an unreadable or invalid one is
        kept as ``{"error": ...}`` rather than lost)."""
        side = self.sidecar_of(path)
        try:
            text = side.read_text(encoding="utf-8")
            json.loads(text)
            return text
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return json.dumps({"error": f"{side.name}: {type(exc).__name__}: {exc}"})

    def _move(self, path: Path, sub: str | None) -> None:
        for p in (path, self.sidecar_of(path)):
            if not p.exists():
                continue
            if sub is None:
                p.unlink()
            else:
                (self.folder / sub).mkdir(exist_ok=True)
                os.replace(p, self.folder / sub / p.name)
        self._last.pop(path.name, None)

    def taken(self, path: Path, keep: bool = False) -> None:
        """The image is committed to the queue: delete it (``keep``: move it to ``taken/``)."""
        self._move(path, "taken" if keep else None)

    def reject(self, path: Path) -> None:
        """Neither an image nor a valid `.tbx`: move it (and its sidecar) to ``rejected/``."""
        self._move(path, "rejected")


class HttpIntake:
    """``POST /images/NAME`` (body: the file) on a loopback address writes ``NAME`` into the
    drop folder by the convention; ``NAME.json`` posts a sidecar (send it first). Answers
    201 with ``{"name": NAME}``, 400 for a bad name, suffix or size, 409 if ``NAME`` is
    already waiting. Runs on its own thread until :meth:`close`.

    Raises: ValueError if ``host`` is not a loopback address (the endpoint has no
    authentication: it is for processes on the device)."""

    def __init__(self, host: str, port: int, drop: DropFolder) -> None:
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"intake {host}:{port}: expected a loopback address (127.0.0.1)")
        self.drop = drop
        self.names: set[str] = set()  # files written here (their "captured" source is http)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def came_by_http(self, name: str) -> bool:
        with self._lock:
            return name in self.names

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        intake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # the service logs events, not requests
                pass

            def _answer(self, code: int, doc: dict) -> None:
                body = (json.dumps(doc) + "\n").encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                prefix = "/images/"
                name = unquote(self.path[len(prefix) :]) if self.path.startswith(prefix) else ""
                suffix = Path(name).suffix.lower()
                if not name or "/" in name or "\\" in name or name.startswith("."):
                    return self._answer(400, {"error": f"path {self.path!r}: expected "
                                              "/images/NAME with a plain file name"})
                if suffix not in (*IMAGE_SUFFIXES, ".json"):
                    return self._answer(400, {"error": f"{name}: suffix {suffix!r}, expected "
                                              f"one of {', '.join(IMAGE_SUFFIXES)} or .json"})
                try:
                    length = int(self.headers.get("Content-Length", ""))
                except ValueError:
                    length = -1
                if not 0 < length <= MAX_POST_BYTES:
                    return self._answer(400, {"error": f"Content-Length {length}: expected "
                                              f"1..{MAX_POST_BYTES}"})
                data = self.rfile.read(length)
                target = intake.drop.folder / name
                if target.exists():
                    return self._answer(409, {"error": f"{name}: already waiting"})
                with intake._lock:
                    intake.names.add(name)
                write_durably(target, data)
                return self._answer(201, {"name": name})

        return Handler
