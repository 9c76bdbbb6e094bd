"""``python -m downlink serve``: the ground node as a long-running service.

It drives a :class:`~downlink.node.DownlinkNode` (the receiver ``downlink receive`` and the
simulator run, with its one output layout, :mod:`downlink.store`) over the configured
transport (UDP, MAVLink, CCSDS), answers with NAKs and FINs, and adds what a long-running
service needs. For each image:

- the text section lands: the node writes ``out_dir/partial/eEPOCH_bBUNDLE.json`` with the
  words; a ``text`` event (before it, one each time a frame adds whole words: ``complete``
  false);
- each y group lands: a preview ``partial/eEPOCH_bBUNDLE.png`` decoded from the groups so
  far (in a process of its own, :mod:`downlink.preview`), a ``group`` event; one still
  queued or decoding when the bundle completes is dropped or killed (``preview_dropped``);
- the bundle is whole: the node writes its `.tbx` and ``NAME.json`` durably, the service
  commits the image row (:mod:`downlink.state`, the node's ledger), and only then does the
  node queue the FIN; a ``delivered`` event; ``NAME.png`` follows from the worker. An
  image the sender resends after a restart (new epoch, new bundle id, same bytes) is
  recognised by its SHA-256: it is FINed again, logged as ``duplicate`` and written nowhere.

At start it restores the receiver: the persisted replay window, the delivered bundles of the
window's sender epoch (``restore_delivered``: their EOFs get a FIN, their frames are not
delivered twice) and the kept frames of bundles under reassembly (``restore_frame``).
Images whose PNG was not written before a crash are decoded again.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from downlink.handoff import cot_events, from_record, parse_cot_url, send_cot
from downlink.node import BundleResult, Delivery, DownlinkNode, TextResult, WholeBundle
from downlink.preview import PreviewDone, Previewer, PreviewJob
from downlink.state import DownlinkState, SeenMarks
from downlink.store import GroundStore, parse_partial_stem
from downlink.web import GroundView, LiveServer, receiver_figures
from textboost.bitstream.container import BitstreamError, Container
from textboost.field.config import FieldConfig
from textboost.field.eventlog import EventLog
from textboost.field.transport_config import open_transport
from textboost.field.udp import parse_host_port, wait_and_fire
from textboost.protocol import (
    Event,
    FrameType,
    Receiver,
    ReceiverGaveUp,
    ReplayState,
    frame_info,
)

__all__ = ["DownlinkService"]

TICK_S = 0.05
_Key = tuple[int, int]  # (sender epoch, bundle id)


class DownlinkService:
    """Args:
    config: the loaded ``field.yaml`` (with a ``downlink`` section).
    source: the config file's name, for error messages.
    loader: the codec (default: ``downlink.codec``; unused with ``decode: false``).
    clock: monotonic seconds, for the protocol's times.
    """

    def __init__(
        self,
        config: FieldConfig,
        *,
        source: str = "field.yaml",
        loader: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        web: str | None = None,
    ) -> None:
        dn = config.downlink
        if dn is None:
            raise ValueError(f"{source}: downlink: missing; add the downlink section")
        if dn.cot is not None:
            parse_cot_url(dn.cot)  # a bad destination is an error now, not at the first image
        self.cfg = dn
        self.link = config.link_config(source)
        if dn.decode and loader is None:  # checked before anything is written
            loader = dn.codec.loader(f"{source}: downlink.codec")
        self.loader = loader if dn.decode else None
        self.clock = clock
        self.out = Path(dn.out_dir)
        self.log = EventLog(dn.event_log, "downlink")
        self.log_lock = threading.Lock()
        self.state = DownlinkState(dn.state_db)
        self.epoch = self.state.new_epoch()  # durable before our first NAK or FIN
        replay = ReplayState.from_bytes(self.state.replay_state())
        self.node = DownlinkNode(
            self.link, out_dir=self.out, codec_factory=self.loader, defer_decode=True,
            max_pixels=dn.max_pixels, ledger=self, on_text=self._on_text,
            on_group=self._on_group if self.loader is not None and dn.progressive else None,
            on_delivered=self._on_delivered, epoch=self.epoch, replay_state=replay,
        )  # fmt: skip
        self.store: GroundStore = self.node.store  # type: ignore[assignment]
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="decode")
        self._cot = ThreadPoolExecutor(1, thread_name_prefix="cot")
        self._decoding: list[Future] = []
        self._finals = 0  # complete pictures queued for the worker: previews wait for them
        self._finals_lock = threading.Lock()
        self._useful: set[_Key] = set()  # bundles whose previews are still of use
        self._useful_lock = threading.Lock()  # between a delivery and a preview's end
        self.previews: Previewer | None = None  # started last: nothing after it can fail
        self._batch: list[tuple[int, int, bytes]] = []  # accepted frames not yet kept
        self._saved_window = replay  # the window as on disk
        restored = 0
        if replay.epoch is not None:
            for bundle in self.state.delivered(replay.epoch):
                self.rx.restore_delivered(bundle, replay.epoch)
            for data in self.state.frames(replay.epoch):
                self.node.restore_frame(data)
                restored += 1
        self.rx.take_drops()  # restored frames of since-finished bundles: not news
        self._log("restart", epoch=self.epoch, frames_restored=restored, **self.state.counts())
        self._sweep_partial()
        self.started_t = time.time()
        self.last_frame_t: float | None = None  # wall time of the last accepted frame
        self._loss_base: tuple[int, int] | None = None  # (epoch, first packet number) seen
        for img in self.state.not_decoded():
            self._decode_stored(img.name, img.sha256)
        self._t0 = clock()
        self.transport = open_transport(config, "downlink", source)  # bound now: fail early
        self.web: LiveServer | None = None
        if web or dn.web:  # bound now too; serves from run()
            self.marks = SeenMarks(dn.state_db)
            view = GroundView(self.out, dn.event_log, link_stats=self.link_figures,
                              marks=self.marks)  # fmt: skip
            self.web = LiveServer(view, parse_host_port(web or dn.web), tiles=dn.tiles)
            if self.web.tiles_error is not None:  # the page goes on without a basemap
                self._log("basemap", error=f"downlink.tiles: {self.web.tiles_error}")
        if self.loader is not None and dn.progressive:
            try:
                self.previews = Previewer(self.loader, self._preview_done,
                                          max_pixels=dn.max_pixels,
                                          hold=lambda: self._finals > 0)  # fmt: skip
            except ValueError as exc:
                raise ValueError(f"{source}: downlink.progressive: {exc}") from None

    def _handoff(self, record: dict[str, Any], png: bool = False) -> None:
        """Cursor-on-Target of one image to ``downlink.cot`` (on a thread of its own: a slow
        TAK server never stalls the link), its picture linked from the live page."""
        if self.cfg.cot is None or not (record.get("capture") or {}).get("lat"):
            return
        base = self.web.url + "files/" if self.web is not None else None
        events = cot_events(from_record(record, self.out, png), base_url=base)
        self._cot.submit(self._send_cot, events, record)

    def _send_cot(self, events: list[bytes], record: dict[str, Any]) -> None:
        try:
            send_cot(events, self.cfg.cot)
            error = None
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
        self._log("handoff", epoch=record.get("epoch"), bundle=record.get("bundle"),
                  image=record.get("image"), to=self.cfg.cot, events=len(events),
                  error=error)  # fmt: skip

    def _log(self, event: str, **kw: Any) -> None:
        with self.log_lock:
            self.log.write(event, **kw)

    @property
    def rx(self) -> Receiver:
        return self.node.receiver

    # --- the node's ledger: what survives a restart --------------------------------------

    def known(self, sha256: str) -> str | None:
        img = self.state.image(sha256)
        return None if img is None else img.name

    def delivered(self, key: _Key, sha256: str, name: str, n_bytes: int,
                  duplicate: bool) -> None:  # fmt: skip
        """The image row and the window, committed before the node queues the FIN."""
        self._keep_frames()  # this bundle's frames are in before deliver() deletes them
        epoch, bundle = key
        stored = None if duplicate else name
        self.state.deliver(epoch, bundle, sha256, stored, n_bytes, self.rx.replay_state.to_bytes())

    # --- the node's events ---------------------------------------------------------------

    def _on_text(self, res: TextResult) -> None:
        key = (res.epoch, res.bundle_id)
        doc = {"epoch": key[0], "bundle": key[1], **res.record()}
        self._log("text", epoch=key[0], bundle=key[1], bytes=res.section_bytes,
                  words=res.strings, complete=res.complete)  # fmt: skip
        if res.complete:  # first words come early, frame by frame; TAK gets the checked set
            self._handoff(doc)  # the words and the place reach TAK before the picture

    def _on_group(self, key: _Key, sections: list[bytes]) -> None:
        group = Container.groups_in(len(sections))
        try:
            data = Container.from_sections(sections).to_bytes()
        except (BitstreamError, ValueError) as exc:
            self._log("group", epoch=key[0], bundle=key[1], group=group,
                      error=f"{type(exc).__name__}: {exc}")  # fmt: skip
            return
        assert self.previews is not None
        with self._useful_lock:
            self._useful.add(key)
        self.previews.submit(PreviewJob(key, data, len(sections),
                                        self.store.partial_path(key, ".png")))  # fmt: skip

    def _useless(self, key: _Key, reason: str) -> None:
        """The bundle's previews are of no use any more (its complete picture is there, or
        it was given up): a queued one is dropped, a running one killed, a written one goes."""
        with self._useful_lock:
            self._useful.discard(key)
            self.store.partial_path(key, ".png").unlink(missing_ok=True)
        if self.previews is not None:  # its end is logged by _preview_done
            self.previews.cancel(key, reason)

    def _on_delivered(self, d: Delivery) -> None:
        # first: from here no preview of it is logged or kept (its drop is logged before it)
        self._useless(d.key, "complete picture available")
        epoch, bundle = d.key
        text = self.node.texts.get(bundle)
        same = text is not None and text.epoch == epoch
        name = (text.capture or {}).get("name") if same and text is not None else None
        self._log("duplicate" if d.duplicate else "delivered", image=d.image, epoch=epoch,
                  bundle=bundle, bytes=d.n_bytes, sha256=d.sha256, name=name)  # fmt: skip
        for whole in self.node.take_complete():  # the PNG, on the worker
            with self._finals_lock:
                self._finals += 1
            self._decoding.append(self._worker.submit(self._decode_final, whole, d.sha256))

    # --- decoding (worker thread) -------------------------------------------------------

    def _preview_done(self, done: PreviewDone) -> None:
        """On the preview thread: a preview made (logged with its PNG), failed, or dropped;
        one that ended after its bundle was delivered is removed, logged as dropped."""
        key, job = done.job.key, done.job
        group = Container.groups_in(job.sections)
        where = {"epoch": key[0], "bundle": key[1], "group": group}
        with self._useful_lock:
            late = done.made and key not in self._useful
            if late:  # finished as the complete picture came: of no use
                job.path.unlink(missing_ok=True)
        if done.dropped is not None or late:
            self._log("preview_dropped", **where, ran_s=round(done.ran_s, 2),
                      reason=done.dropped or "finished after the complete picture came")
        elif done.error is not None:
            self._log("group", **where, bytes=len(job.data), error=done.error)
        else:
            self._log("group", **where, bytes=len(job.data), png=f"partial/{job.path.name}")

    def _decode_stored(self, name: str, sha: str) -> None:
        """A restart: an image stored before whose PNG was not written."""
        if self.loader is not None:
            job = lambda: (sha, self.node.decode_stored(name))  # noqa: E731
            self._decoding.append(self._worker.submit(job))

    def _decode_final(self, whole: WholeBundle, sha: str) -> tuple[str, BundleResult]:
        try:
            (res,) = self.node.decode([whole])
        finally:
            with self._finals_lock:
                self._finals -= 1
        return sha, res

    def _collect_decoded(self) -> None:
        for f in [f for f in self._decoding if f.done()]:
            self._decoding.remove(f)
            if f.cancelled():  # a stop: a stored image not decoded is redone at the start
                continue
            sha, res = f.result()
            name = res.image
            self.state.decoded(sha)
            error = None if res.decoded else res.error or "not decoded"
            extra = {"error": error} if error else {"png": f"{name}.png"}
            self._log("decoded", image=name, sha256=sha, **extra)
            if error is None and self.cfg.cot is not None:
                try:
                    record = json.loads((self.out / f"{name}.json").read_text())
                except (OSError, ValueError) as exc:  # written durably before the FIN
                    self._log("handoff", image=name, to=self.cfg.cot, events=0,
                              error=f"{name}.json: {exc}")  # fmt: skip
                else:
                    self._handoff(record, png=True)

    # --- the loop -----------------------------------------------------------------------

    def _keep_frames(self) -> None:
        """Keep the accepted frames of open bundles and the window, whenever it moved (EOFs
        and HELLOs move it too): called before any NAK or FIN goes out, so a frame acted on
        before a kill -9 is a replay after the restart, never answered twice."""
        st = self.rx.replay_state
        if self._batch or st != self._saved_window:
            self.state.save_frames(self._batch, st.to_bytes(), st.epoch)
            self._batch.clear()
            self._saved_window = st

    def receive(self, data: bytes, now: float) -> bool:
        """One datagram: to the receiver; an accepted DATA/PARITY frame of a bundle still
        under reassembly is kept for a restart. Returns: whether the frame was accepted
        (checked, authentic, new)."""
        before = self.rx.stats.frames_received
        self._gave_up(self.node.receive(data, now))
        accepted = self.rx.stats.frames_received != before
        if accepted:
            info = frame_info(data)
            st = self.rx.replay_state
            epoch = st.epoch  # an accepted frame's epoch is the window's
            self.last_frame_t = time.time()
            if self._loss_base is None or self._loss_base[0] != epoch:
                self._loss_base = (st.epoch, st.top)  # the first number of this epoch we saw
            keep = info.type in (FrameType.DATA, FrameType.PARITY) and epoch is not None
            if keep and not self.rx.is_complete(info.bundle_id, epoch):
                self._batch.append((epoch, info.bundle_id, bytes(data)))
        return accepted

    # the TimedNode interface for wait_and_fire
    def next_timer(self) -> float | None:
        return self.rx.next_timer()

    def handle_timeout(self, now: float) -> list[Event]:
        events = self.node.handle_timeout(now)
        self._gave_up(events)
        return events

    def _gave_up(self, events: list[Event]) -> None:
        """A bundle that can no longer complete: the sender restarted (it resends the image
        under its new epoch) or stopped answering NAKs (it queues the image again). Either
        way the image comes again as a new bundle: its partial files and its card go."""
        for e in events:
            if isinstance(e, ReceiverGaveUp):
                key = (e.epoch, e.bundle_id)
                self._useless(key, "bundle abandoned")
                self.store.drop_partial(key)
                restarted = e.epoch != self.rx.replay_state.epoch
                self._log("abandoned", epoch=e.epoch, bundle=e.bundle_id,
                          sections=e.delivered_sections,
                          reason="sender restarted" if restarted else "sender silent")  # fmt: skip

    def _sweep_partial(self) -> None:
        """At start: partial files of bundles no longer under reassembly (given up, or of
        an older sender epoch, while this service was down) go, each with an ``abandoned``
        event so the page drops its card."""
        open_keys = {
            (r.epoch, b) for b, r in self.rx.records.items()
            if r.delivered_s is None and r.gave_up_s is None
        }  # fmt: skip
        stale: set[tuple[int, int]] = set()
        for path in self.store.partial.iterdir():
            key = parse_partial_stem(path.name.split(".", 1)[0])
            if key is not None and key not in open_keys:
                stale.add(key)
        for key in sorted(stale):
            self.store.drop_partial(key)
            self._log("abandoned", epoch=key[0], bundle=key[1], reason="not in flight at start")

    def link_figures(self) -> dict[str, Any]:
        """The link block's live figures (:func:`~downlink.web.receiver_figures`)."""
        base = self._loss_base
        first = base[1] if base is not None and base[0] == self.rx.replay_state.epoch else None
        return receiver_figures(self.rx, first_pn=first, started_t=self.started_t,
                                last_frame_t=self.last_frame_t)  # fmt: skip

    def run(self, stop: threading.Event, max_s: float | None = None) -> None:
        """Serve until ``stop`` is set (or ``max_s`` seconds passed)."""
        elapsed = lambda: self.clock() - self._t0  # noqa: E731
        t = self.transport

        def drain() -> None:
            for data in t.receive():
                if self.receive(data, elapsed()):
                    t.confirm(data)  # NAKs and FINs go to the sender of valid frames only

        if self.web is not None:
            self.web.start()
        while not stop.is_set() and (max_s is None or elapsed() < max_s):
            now = wait_and_fire(t, self, elapsed, TICK_S, drain)
            self._keep_frames()
            for frame in self.rx.poll_transmit(now):
                t.send(frame)  # no peer yet, or lost: the sender's EOF asks again
            t.tick(now)
            self._collect_decoded()
            drops = self.rx.take_drops()
            if drops:
                with self.log_lock:
                    self.log.drops(drops)
        self._keep_frames()

    def busy(self) -> str | None:
        """The work a stop would cut short (None: none): decodes not yet done; a stored
        image not decoded is decoded again at the next start."""
        n = sum(not f.done() for f in self._decoding)
        return f"{n} decode{'s' if n > 1 else ''} of stored images" if n else None

    def close(self, wait: bool = True) -> None:
        """``wait``: let the decodes queued finish (else they are redone at the next start)."""
        if self.previews is not None:
            self.previews.close()
        if self.web is not None:
            self.web.close()
            self.marks.close()
        self.transport.close()
        self._worker.shutdown(wait=wait, cancel_futures=True)
        self._cot.shutdown(wait=True)
        self._collect_decoded()
        self.state.close()
        self.log.close()
