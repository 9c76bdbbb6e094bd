"""Progressive previews in a process of their own, so that one made useless is stopped.

A preview decodes the y groups so far of a bundle still arriving. Once the bundle is whole,
its complete picture replaces the preview, so a preview still queued or still decoding is
work done for nothing — on a two-core ground it also slows the complete decode beside it.
A thread cannot be stopped inside a decode; a process can: :meth:`Previewer.cancel` drops a
queued preview unread and kills the preview process if it is decoding that bundle (then a
fresh one starts and loads the codec, ready for the next preview). The complete pictures are
decoded in the service's own process, never here.

One preview at a time, the newest per bundle (a preview queued for a bundle whose next group
landed is replaced), none started while ``hold()`` says a complete picture waits for its
decode. Each preview ends in exactly one :class:`PreviewDone` passed to ``on_done`` (on the
preview thread): made, failed, or dropped with the reason and how long it had run.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

__all__ = ["PreviewDone", "PreviewJob", "Previewer"]

Key = tuple[int, int]  # (sender epoch, bundle id)
POLL_S = 0.02  # how often a running preview is checked for a cancel


@dataclass(frozen=True, slots=True)
class PreviewJob:
    key: Key
    data: bytes  # the `.tbx` of the sections so far
    sections: int
    path: Path  # where its PNG goes (written as ``*.part.png``, then renamed)


@dataclass(frozen=True, slots=True)
class PreviewDone:
    job: PreviewJob
    made: bool  # the PNG is written
    error: str | None = None  # the decode failed (the picture may still come whole)
    dropped: str | None = None  # why it was not made: cancelled or skipped
    ran_s: float = 0.0  # how long it had decoded (0: never started)


def _serve(loader: Callable[[], Any], conn: Connection) -> None:
    """The preview process: load the codec at once (so the first preview finds it warm),
    say "ready", then decode each job sent and answer None or the error. On one thread: a
    preview never takes the core the link and the complete decodes need (and threads beyond
    the free cores make a decode many times slower: 0.36 s against 2.9 s measured)."""
    os.environ["OMP_NUM_THREADS"] = "1"  # before the codec's runtime is imported
    import numpy as np

    from downlink.store import GroundStore

    try:
        codec, problem = loader(), None
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
    except Exception as exc:  # said with every job: the parent logs it per preview
        codec, problem = None, f"codec: {type(exc).__name__}: {exc}"
    conn.send("ready")
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        data, max_pixels, path = job
        if codec is None:
            conn.send(problem)
            continue
        try:
            kw = {} if max_pixels is None else {"max_pixels": max_pixels}
            GroundStore.write_png(np.asarray(codec.decode(data, **kw)), Path(path))
            conn.send(None)
        except Exception as exc:  # one preview's failure is reported, never the process's
            conn.send(f"{type(exc).__name__}: {exc}")


class Previewer:
    """Args:
    loader: builds the codec in the preview process (sent there by pickling: a
        :class:`~textboost.pipeline.loader.PipelineLoader`, which crosses unloaded).
    on_done: called with each :class:`PreviewDone`, on the preview thread.
    max_pixels: the decoder's limit (None: the codec's).
    hold: while it returns True no preview starts (a complete picture waits).

    Raises: ValueError if ``loader`` cannot be sent to another process.
    """

    def __init__(
        self,
        loader: Callable[[], Any],
        on_done: Callable[[PreviewDone], None],
        *,
        max_pixels: int | None = None,
        hold: Callable[[], bool] = lambda: False,
    ) -> None:
        try:
            pickle.dumps(loader)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise ValueError(
                "progressive previews are decoded in a process of their own, which builds its "
                f"codec from the loader: a PipelineLoader (this one cannot be sent: {exc})"
            ) from None
        self.loader, self.on_done, self.max_pixels, self.hold = loader, on_done, max_pixels, hold
        self._ctx = mp.get_context("spawn")  # no fork of a process holding threads
        self._cond = threading.Condition()
        self._queue: dict[Key, PreviewJob] = {}  # the newest preview per bundle, in order
        self._running: Key | None = None
        self._cancel: str | None = None  # why the running preview is to stop
        self._closed = False
        self._proc: Any = None
        self._conn: Connection | None = None
        self.warm = False  # the process has its codec (a preview sent now decodes at once)
        self.started = 0  # preview processes started (a cancel that kills one starts another)
        self._start_process()
        self._thread = threading.Thread(target=self._loop, name="preview", daemon=True)
        self._thread.start()

    @property
    def pid(self) -> int | None:
        """The preview process's id (None: none running)."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> Key | None:
        """The bundle whose preview is being decoded now."""
        return self._running

    def submit(self, job: PreviewJob) -> None:
        """Queue a preview; one already queued for the same bundle is replaced."""
        with self._cond:
            self._queue.pop(job.key, None)
            self._queue[job.key] = job
            self._cond.notify_all()

    def cancel(self, key: Key, reason: str) -> None:
        """The preview of ``key`` is useless now: dropped if queued, stopped if running."""
        with self._cond:
            queued = self._queue.pop(key, None)
            if self._running == key:
                self._cancel = reason
        if queued is not None:
            self.on_done(PreviewDone(queued, False, dropped=reason))

    def close(self) -> None:
        """Stop at once: a preview is never worth waiting for."""
        with self._cond:
            self._closed = True
            self._cancel = "stopping"
            self._cond.notify_all()
        self._thread.join(30)
        self._stop_process()

    # --- the preview thread -------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._queue or self.hold()):
                    self._cond.wait(0.05)
                    if not self.warm and self._conn is not None:
                        try:
                            if self._conn.poll(0):
                                self._reply()  # "ready" while idle
                        except (EOFError, OSError):  # died loading: a new one for the next
                            self._stop_process()
                if self._closed:
                    return
                key = next(iter(self._queue))
                job = self._queue.pop(key)
                self._running, self._cancel = key, None
            done = self._run(job)
            with self._cond:
                self._running = None
            self.on_done(done)

    def _run(self, job: PreviewJob) -> PreviewDone:
        if self._conn is None:
            self._start_process()
        assert self._conn is not None
        t0 = time.monotonic()
        try:
            self._conn.send((job.data, self.max_pixels, str(job.path)))
            while True:  # its answer (after "ready" if the process is still loading)
                while not self._conn.poll(POLL_S):
                    with self._cond:
                        reason = self._cancel
                    if reason is not None:  # kill it mid-decode; a fresh one gets ready
                        self._stop_process()
                        job.path.with_name(job.path.name + ".part.png").unlink(missing_ok=True)
                        if not self._closed:
                            self._start_process()
                        return PreviewDone(job, False, dropped=reason,
                                           ran_s=time.monotonic() - t0)  # fmt: skip
                error = self._reply()
                if error != "ready":
                    break
        except (EOFError, OSError) as exc:  # the process died under it (killed, no memory)
            self._stop_process()
            return PreviewDone(job, False, error=f"preview process ended ({exc or 'EOF'})",
                               ran_s=time.monotonic() - t0)  # fmt: skip
        return PreviewDone(job, error is None, error=error, ran_s=time.monotonic() - t0)

    def _reply(self) -> str | None:
        assert self._conn is not None
        msg = self._conn.recv()
        if msg == "ready":
            self.warm = True
        return msg

    def _start_process(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_serve, args=(self.loader, child),
                                       name="textboost-preview", daemon=True)  # fmt: skip
        self._proc.start()
        child.close()
        self._conn = parent
        self.warm = False
        self.started += 1

    def _stop_process(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(10)
            self._proc = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
