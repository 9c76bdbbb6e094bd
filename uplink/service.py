"""``python -m uplink serve``: the edge node as a long-running service.

It takes images from the drop folder (and the loopback HTTP intake, :mod:`uplink.intake`),
encodes them on a worker thread (:class:`~uplink.encode.EncodePipeline`; `.tbx` files pass
through), queues them in SQLite (:mod:`uplink.state`) and sends them with an
:class:`~uplink.node.UplinkNode` over the configured transport (UDP, MAVLink, CCSDS), paced
to ``rate_bps`` (and the transport's cap) and sending only in the ``on`` part of
each duty-cycle period. Every step goes to the JSONL event log.

Crash safety, in order: the epoch is incremented and durable before the first frame; an
image's `.tbx` is durable in the queue before its source file is removed; its ack is durable
when the FIN is handled. A restart therefore resubmits every image not acknowledged (under
the new epoch, with new bundle ids; the ground recognises those it already stored by their
SHA-256 and acknowledges them again) and nothing acknowledged.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from textboost.field.config import FieldConfig
from textboost.field.eventlog import EventLog
from textboost.field.transport import WireBucket, pace_rate
from textboost.field.transport_config import open_transport
from textboost.field.udp import parse_host_port, wait_and_fire
from textboost.protocol import BundleAcked, BundleFailed, Event
from uplink.cache import file_sha256
from uplink.encode import Encoded, EncodePipeline
from uplink.intake import DropFolder, HttpIntake, shown
from uplink.node import UplinkNode
from uplink.state import UplinkState

__all__ = ["Timed", "UplinkService"]

TICK_S = 0.02


@dataclass(frozen=True, slots=True)
class Timed:
    """An encode and the wall time it began and ended on the worker (the ``encoded``
    event's ``encode_s``; ``waited_s`` is from the hand-over to the start)."""

    encoded: Encoded
    start_t: float
    end_t: float


class UplinkService:
    """Args:
    config: the loaded ``field.yaml`` (with an ``uplink`` section).
    source: the config file's name, for error messages.
    pipeline: the encode pipeline (default: from ``uplink.budget``, ``text`` and ``codec``).
    clock: monotonic seconds, for the protocol's times.

    Raises: ConfigError (bad key file), ValueError (intake not on loopback), OSError.
    """

    def __init__(
        self,
        config: FieldConfig,
        *,
        source: str = "field.yaml",
        pipeline: EncodePipeline | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        up = config.uplink
        if up is None:
            raise ValueError(f"{source}: uplink: missing; add the uplink section")
        self.cfg = up
        self.link = config.link_config(source)
        self.clock = clock
        self.pipeline = pipeline or EncodePipeline(
            up.budget.fixed_policy(), None,
            up.codec.loader(f"{source}: uplink.codec", fusion=up.text and up.restore == "closer"),
            text=up.text, name=up.send_name, restore=up.restore,
        )
        self.log = EventLog(up.event_log, "uplink")
        self.state = UplinkState(up.state_db)
        self.drop = DropFolder(up.drop_dir)
        self.intake: HttpIntake | None = None
        if up.intake is not None:
            self.intake = HttpIntake(*parse_host_port(up.intake), self.drop)
        # the epoch is durable before any frame of this session exists
        self.epoch = self.state.new_epoch()
        self.log.write("restart", epoch=self.epoch, **self.state.counts())
        self.node = UplinkNode(
            self.link, storage_bytes=up.storage_bytes, drop_policy=up.drop_policy,
            max_in_flight=up.max_in_flight, epoch=self.epoch,
        )  # fmt: skip
        self._tbx: dict[str, bytes] = {}  # unacknowledged images (to retry a failed bundle)
        for q in self.state.pending():
            try:
                if hashlib.sha256(q.tbx).hexdigest() != q.sha256:
                    raise ValueError(f"its .tbx does not match its SHA-256 {q.sha256!r}")
                self._queue(q.image_id, q.tbx, 0.0)
            except (ValueError, TypeError) as exc:  # one damaged row never stops the rest
                self.log.write("skipped", image=str(q.image_id), source=str(up.state_db),
                               reason=f"{up.state_db}: row image_id={q.image_id!r}: {exc}; "
                               "not sent, kept in the file")  # fmt: skip
        self._logged = 0  # submissions logged (entries of node.bundle_image)
        # per file: (its encode, sha256, sidecar, time handed to the encoder)
        self._encoding: dict[Path, tuple[Future[Timed], str, str | None, float]] = {}
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="encode")
        # the warm-up's future (None: off): done once the codec is loaded or failed to
        self.warm: Future[None] | None = None
        if up.warm_start:
            self.warm = self._worker.submit(self._warm_up)
        self._refused: set[tuple[str, int, int]] = set()  # (name, size, mtime) not movable
        self._t0 = clock()
        self.transport = open_transport(config, "uplink", source)  # bound now: fail early

    def _queue(self, image_id: str, tbx: bytes, now: float) -> None:
        """Into the node's store-and-forward queue, whose drop policy (``storage_bytes``,
        ``drop_policy``) decides what waits: a dropped image leaves SQLite too."""
        self._tbx[image_id] = tbx
        for d in self.node.store(image_id, tbx, now):
            self.state.drop(d.image_id)
            self._tbx.pop(d.image_id, None)
            self.log.write("dropped", image=d.image_id, bytes=d.size_bytes, reason=d.reason)

    # --- intake -------------------------------------------------------------------------

    def _scan(self) -> None:
        """Take the drop folder's complete files: refuse what :meth:`DropFolder.inspect`
        refuses, skip what is already queued (a crash after the commit, before the
        removal), hand the rest to the encode worker. One file never stops the service:
        whatever goes wrong with it is its ``rejected`` event."""
        for path in self.drop.ready():
            if path in self._encoding:
                continue
            via = "http" if self.intake and self.intake.came_by_http(path.name) else "drop"
            try:
                if problem := self.drop.inspect(path):
                    self._reject(path, f"{shown(str(path))}: {problem}")
                    continue
                sha = file_sha256(path)
                if self.state.taken(path.name, sha) is not None:
                    self.drop.taken(path, self.cfg.keep_sources)
                    continue
                self.log.write("captured", image=path.name, bytes=path.stat().st_size,
                               source=via)  # fmt: skip
                sidecar = self.drop.sidecar(path)
            except FileNotFoundError:  # removed meanwhile; seen again if it comes back
                continue
            except Exception as exc:
                self._reject(path, f"{shown(str(path))}: {type(exc).__name__}: {exc}")
                continue
            future = self._worker.submit(self._encode, path)
            self._encoding[path] = (future, sha, sidecar, time.time())
            self.log.write("encoding", image=path.name, queued=len(self._encoding) - 1)

    def _warm_up(self) -> None:
        """On the encode worker, first of all: load the codec (and the spotter, with the
        words on). A model that cannot load fails again, and is reported, at the first
        encode."""
        codec = self.pipeline.codec
        if self.cfg.text:
            codec.spotter  # noqa: B018 - built on first use

    def _encode(self, path: Path) -> Timed:
        """On the encode worker: the encode and when it began and ended (wall seconds)."""
        t0 = time.time()
        enc = self.pipeline.encode(path)
        return Timed(enc, t0, time.time())

    def _reject(self, path: Path, reason: str) -> None:
        """Log the ``rejected`` event and move the file to ``rejected/``; a file that cannot
        be moved stays, and is not logged again until it changes (``_refused``)."""
        key = (path.name, *self._stat(path))
        if key in self._refused:
            return
        source = shown(str(path))
        self.log.write("rejected", image=shown(path.name), source=source,
                       reason=" ".join(reason.split()))  # fmt: skip
        try:
            self.drop.reject(path)
        except OSError as exc:
            self._refused.add(key)
            self.log.write("rejected", image=shown(path.name), source=source,
                           reason=f"{shown(str(path))}: cannot move it to rejected/ ({exc}); "
                           "left in place and ignored until it changes")  # fmt: skip

    @staticmethod
    def _stat(path: Path) -> tuple[int, int]:
        try:
            st = path.lstat()
        except OSError:
            return (-1, -1)
        return (st.st_size, st.st_mtime_ns)

    def _store_encoded(self, now: float) -> None:
        for path, (future, sha, sidecar, captured_t) in list(self._encoding.items()):
            if not future.done():
                continue
            del self._encoding[path]
            try:
                timed = future.result()
                enc = timed.encoded
                if len(enc.data) > self.link.max_bundle_bytes:  # would never go: refuse now
                    raise ValueError(
                        f"{path.name}: {len(enc.data)} bytes, more than link.max_bundle_bytes "
                        f"{self.link.max_bundle_bytes}"
                    )
            except ImportError:  # a broken install is no file's fault: stop, say so
                raise
            except (ValueError, OSError, RuntimeError) as exc:
                self._reject(path, str(exc))
                continue
            except Exception as exc:
                self._reject(path, f"{path}: {type(exc).__name__}: {exc}")
                continue
            tbx_sha = hashlib.sha256(enc.data).hexdigest()
            # durable before the source goes: a crash in between re-finds the file (taken())
            image_id = self.state.add(
                path.name, sha, sidecar, enc.data, tbx_sha, enc.bpp, captured_t
            )
            with contextlib.suppress(OSError):  # queued; found at the next poll, handled there
                self.drop.taken(path, self.cfg.keep_sources)
            self._queue(image_id, enc.data, now)
            self.log.write("encoded", image=image_id, bytes=len(enc.data),
                           bpp=round(enc.bpp, 5), sha256=tbx_sha, name=path.name,
                           encode_s=round(timed.end_t - timed.start_t, 2),
                           waited_s=round(max(0.0, timed.start_t - captured_t), 2),
                           queued=len(self._encoding))  # fmt: skip

    # --- the protocol -------------------------------------------------------------------

    def _on_events(self, events: list[Event]) -> None:
        for e in events:
            image_id = self.node.bundle_image[e.bundle_id]
            n = len(self._tbx.get(image_id, b""))
            if isinstance(e, BundleAcked):
                self.state.acked(image_id)  # durable: never sent again
                self._tbx.pop(image_id, None)
                self.log.write("acked", image=image_id, epoch=self.epoch, bundle=e.bundle_id,
                               bytes=n)  # fmt: skip
            elif isinstance(e, BundleFailed):
                self.log.write("failed", image=image_id, epoch=self.epoch, bundle=e.bundle_id,
                               bytes=n, reason=e.reason)  # fmt: skip
                self._queue(image_id, self._tbx[image_id], e.time_s)  # try again

    def _log_submissions(self) -> None:
        """Log bundles the node submitted since the last call (its ``bundle_image`` only
        grows within an epoch: bundle ids count up and never repeat)."""
        if len(self.node.bundle_image) == self._logged:
            return
        new = list(self.node.bundle_image.items())[self._logged :]
        self._logged = len(self.node.bundle_image)
        for bundle, image_id in new:
            self.state.submitted(image_id, self.epoch, bundle)
            self.log.write("submitted", image=image_id, epoch=self.epoch, bundle=bundle,
                           bytes=len(self._tbx.get(image_id, b"")))  # fmt: skip

    # the TimedNode interface for wait_and_fire: timer events are handled, not dropped
    def next_timer(self) -> float | None:
        return self.node.next_timer()

    def handle_timeout(self, now: float) -> list[Event]:
        events = self.node.handle_timeout(now)
        self._on_events(events)
        return events

    def _duty_on(self, t: float) -> bool:
        period = self.cfg.duty_period_s
        return self.cfg.duty_cycle >= 1.0 or t % period < self.cfg.duty_cycle * period

    # --- the loop -----------------------------------------------------------------------

    def run(self, stop: threading.Event, max_s: float | None = None) -> None:
        """Serve until ``stop`` is set (or ``max_s`` seconds passed)."""
        elapsed = lambda: self.clock() - self._t0  # noqa: E731
        t = self.transport
        # on-air bytes, at the tighter of rate_bps and the transport's cap; one frame of burst
        rate = pace_rate(self.cfg.rate_bps, t.cap_bps)
        wire_mtu = t.wire_bytes(self.link.mtu_bytes)
        bucket = WireBucket(rate, wire_mtu, self.clock(), t.wire_bytes)
        next_scan = 0.0

        def drain() -> None:
            for data in t.receive():
                self._on_events(self.node.receive(data, elapsed()))

        while not stop.is_set() and (max_s is None or elapsed() < max_s):
            now = elapsed()
            if now >= next_scan:
                self._scan()
                next_scan = now + self.cfg.poll_s
            self._store_encoded(now)
            budget = bucket.budget(self.clock()) if self._duty_on(now) else 0
            for frame in self.node.poll_transmit(now, budget):
                bucket.spend(len(frame))
                t.send(frame)  # a lost frame is the protocol's to repair
            t.tick(now)
            self._log_submissions()
            wait_and_fire(t, self, elapsed, min(TICK_S, self.cfg.poll_s), drain)
            self.log.drops(self.node.sender.take_drops())

    @property
    def send_errors(self) -> int:
        return self.transport.stats.send_errors

    def busy(self) -> str | None:
        """The work a stop would cut short (None: none): encodes not yet stored; their
        files stay in the drop folder and are encoded again at the next start."""
        n = sum(not f.done() for f, *_ in self._encoding.values())
        return f"{n} encode{'s' if n > 1 else ''} in progress" if n else None

    def close(self, wait: bool = True) -> None:
        """``wait``: let an encode in progress finish (its result is not stored either way)."""
        self.transport.close()
        self._worker.shutdown(wait=wait, cancel_futures=True)
        if self.intake is not None:
            self.intake.close()
        self.state.close()
        self.log.close()
