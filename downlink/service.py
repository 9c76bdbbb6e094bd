"""``python -m downlink serve``: the ground node as a long-running service.

It drives a :class:`~textboost.protocol.Receiver` (``fin_on_delivery=False``) over the
configured transport (UDP, MAVLink, CCSDS),
answers with NAKs and FINs, and for each image:

- the text section lands: ``out_dir/partial/eEPOCH_bBUNDLE.json`` with the words, a
  ``text`` event;
- each y group lands: a preview ``partial/eEPOCH_bBUNDLE.png`` decoded from the groups so
  far (on a worker thread), a ``group`` event;
- the bundle is whole: its `.tbx` and ``NAME.json`` (words, epoch, bundle, SHA-256) are
  written and fsynced, the image row committed (:mod:`downlink.state`), and only then is
  the FIN queued (``acknowledge``), a ``delivered`` event; ``NAME.png`` follows from the
  worker. ``NAME`` is the first 16 hex digits of the `.tbx`'s SHA-256, so an image the
  sender resends after a restart (new epoch, new bundle id, same bytes) is recognised: it
  is FINed again, logged as ``duplicate`` and written nowhere.

At start it restores the receiver: the persisted replay window, the delivered bundles of the
window's sender epoch (``restore_delivered``: their EOFs get a FIN, their frames are not
delivered twice) and the kept frames of bundles under reassembly (``restore_frame``).
Images whose PNG was not written before a crash are decoded again.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from downlink.handoff import cot_events, from_record, parse_cot_url, send_cot
from downlink.node import read_text
from downlink.state import DownlinkState
from downlink.web import GroundView, LiveServer, receiver_figures
from textboost.codec.container import BitstreamError, Container, SectionKind
from textboost.field.config import FieldConfig
from textboost.field.durable import write_durably
from textboost.field.eventlog import EventLog
from textboost.field.transport_config import open_transport
from textboost.field.udp import parse_host_port, wait_and_fire
from textboost.protocol import (
    BundleDelivered,
    Event,
    FrameType,
    Receiver,
    ReceiverGaveUp,
    ReplayState,
    SectionDelivered,
    frame_info,
)

__all__ = ["DownlinkService"]

TICK_S = 0.05
_Key = tuple[int, int]  # (sender epoch, bundle id)


@dataclass(slots=True)
class _Open:
    """What the service knows of a bundle under reassembly."""

    sections: list[bytes] = field(default_factory=list)  # the delivered in-order prefix
    text: dict[str, Any] | None = None  # header size and words, once section 0 landed


def _read_text(section: bytes) -> dict[str, Any]:
    """Image size, words and capture metadata of a bundle's first section (``error`` set if
    unreadable), as the JSON record holds them."""
    res = asdict(read_text(0, section, 0.0))
    return {k: res[k] for k in ("width", "height", "text_bytes", "words", "capture", "error")}


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
        self.partial = self.out / "partial"
        self.partial.mkdir(parents=True, exist_ok=True)
        self.log = EventLog(dn.event_log, "downlink")
        self.log_lock = threading.Lock()
        self.state = DownlinkState(dn.state_db)
        self.epoch = self.state.new_epoch()  # durable before our first NAK or FIN
        replay = ReplayState.from_bytes(self.state.replay_state())
        self.rx = Receiver(self.link, self.epoch, replay, fin_on_delivery=False)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="decode")
        self._cot = ThreadPoolExecutor(1, thread_name_prefix="cot")
        self._decoding: list[Future] = []
        self._latest: dict[_Key, int] = {}  # newest preview asked for, per bundle
        self._open: dict[_Key, _Open] = {}
        self._batch: list[tuple[int, int, bytes]] = []  # accepted frames not yet kept
        self._saved_window = replay  # the window as on disk
        self._restoring = True
        restored = 0
        if replay.epoch is not None:
            for bundle in self.state.delivered(replay.epoch):
                self.rx.restore_delivered(bundle, replay.epoch)
            for data in self.state.frames(replay.epoch):
                self._on_events(self.rx.restore_frame(data, 0.0), 0.0)
                restored += 1
        self._restoring = False
        self.rx.take_drops()  # restored frames of since-finished bundles: not news
        self._log("restart", epoch=self.epoch, frames_restored=restored, **self.state.counts())
        for img in self.state.not_decoded():
            self._decode_final(img.sha256, img.name)
        self._t0 = clock()
        self.transport = open_transport(config, "downlink", source)  # bound now: fail early
        self.web: LiveServer | None = None
        if web or dn.web:  # bound now too; serves from run()
            view = GroundView(self.out, dn.event_log, link_stats=lambda: receiver_figures(self.rx))
            self.web = LiveServer(view, parse_host_port(web or dn.web), tiles=dn.tiles)

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

    # --- protocol events ----------------------------------------------------------------

    def _on_events(self, events: list[Event], now: float) -> None:
        for e in events:
            key = (e.epoch, e.bundle_id)
            if isinstance(e, SectionDelivered):
                self._section(key, e)
            elif isinstance(e, BundleDelivered):
                self._deliver(key, list(e.sections))
            elif isinstance(e, ReceiverGaveUp):
                self._open.pop(key, None)
                self._latest.pop(key, None)
                if e.epoch != self.rx.replay_state.epoch:  # the sender restarted: it resends
                    for suffix in (".json", ".png"):
                        (self.partial / f"{self._stem(key)}{suffix}").unlink(missing_ok=True)

    def _stem(self, key: _Key) -> str:
        return f"e{key[0]}_b{key[1]}"

    def _section(self, key: _Key, e: SectionDelivered) -> None:
        b = self._open.setdefault(key, _Open())
        b.sections.append(e.data)
        if e.index == SectionKind.TEXT:
            b.text = _read_text(e.data)
            if self._restoring:
                return
            doc = {"epoch": key[0], "bundle": key[1], **b.text}
            path = self.partial / f"{self._stem(key)}.json"
            write_durably(path, (json.dumps(doc, indent=1) + "\n").encode(), fsync=False)
            self._log("text", epoch=key[0], bundle=key[1], bytes=len(e.data),
                      words=[w["text"] for w in b.text["words"]])  # fmt: skip
            self._handoff(doc)  # the words and the place reach TAK before the picture
        elif (
            e.index >= Container.IMAGE_SECTIONS
            and self.loader is not None
            and self.cfg.progressive
            and not self._restoring
        ):
            self._latest[key] = len(b.sections)
            self._decoding.append(
                self._worker.submit(self._preview, key, list(b.sections))
            )

    def _deliver(self, key: _Key, sections: list[bytes]) -> None:
        """Store the image durably (or recognise it), then FIN it."""
        epoch, bundle = key
        opened = self._open.pop(key, None)
        self._latest.pop(key, None)
        try:
            data = Container.from_sections(sections).to_bytes()
            error = None
        except (BitstreamError, ValueError) as exc:  # a sender bug: keep the bytes anyway
            data, error = b"".join(sections), f"{type(exc).__name__}: {exc}"
        sha = hashlib.sha256(data).hexdigest()
        self._keep_frames()  # this bundle's frames are in before deliver() deletes them
        replay = self.rx.replay_state.to_bytes()
        known = self.state.image(sha)
        if known is not None:
            self.state.deliver(epoch, bundle, sha, None, len(data), replay)
            self.rx.acknowledge(bundle, epoch)
            self._log("duplicate", image=known.name, epoch=epoch, bundle=bundle,
                      bytes=len(data), sha256=sha)  # fmt: skip
        else:
            name = sha[:16]
            text = opened.text if opened and opened.text else _read_text(sections[0])
            record = {
                "image": name, "sha256": sha, "bytes": len(data), "epoch": epoch,
                "bundle": bundle, "delivered_t": round(time.time(), 6),
                **text, "strings": [w["text"] for w in text["words"]],
                "error": error or text["error"],
            }  # fmt: skip
            write_durably(self.out / f"{name}.tbx", data)
            write_durably(self.out / f"{name}.json", (json.dumps(record, indent=1) + "\n").encode())
            self.state.deliver(epoch, bundle, sha, name, len(data), replay)
            self.rx.acknowledge(bundle, epoch)
            self._log("delivered", image=name, epoch=epoch, bundle=bundle, bytes=len(data),
                      sha256=sha)  # fmt: skip
            if not self._restoring:
                self._decode_final(sha, name)
        for suffix in (".json", ".png"):
            (self.partial / f"{self._stem(key)}{suffix}").unlink(missing_ok=True)

    # --- decoding (worker thread) -------------------------------------------------------

    def _decode_png(self, data: bytes, path: Path) -> None:
        import numpy as np
        from PIL import Image

        assert self.loader is not None
        img = np.asarray(self.loader().decode(data, max_pixels=self.cfg.max_pixels))
        tmp = path.with_name(path.name + ".part.png")
        Image.fromarray(img).save(tmp)
        tmp.replace(path)

    def _preview(self, key: _Key, sections: list[bytes]) -> None:
        if self._latest.get(key, 0) != len(sections):
            return  # a newer preview is queued, or the bundle is delivered (the full PNG comes)
        path = self.partial / f"{self._stem(key)}.png"
        group = Container.groups_in(len(sections))
        try:
            self._decode_png(Container.from_sections(sections).to_bytes(), path)
            png: str | None = f"partial/{path.name}"
            if key not in self._latest:  # delivered meanwhile: the full PNG replaces it
                path.unlink(missing_ok=True)
                png = None
            self._log("group", epoch=key[0], bundle=key[1], group=group,
                      bytes=sum(map(len, sections)), png=png)  # fmt: skip
        except (BitstreamError, ValueError, OSError, RuntimeError) as exc:
            self._log("group", epoch=key[0], bundle=key[1], group=group,
                      error=f"{type(exc).__name__}: {exc}")  # fmt: skip

    def _decode_final(self, sha: str, name: str) -> None:
        if self.loader is None:
            return

        def job() -> tuple[str, str, str | None]:
            path = self.out / f"{name}.png"
            try:
                self._decode_png((self.out / f"{name}.tbx").read_bytes(), path)
                return sha, name, None
            except (BitstreamError, ValueError, OSError, RuntimeError) as exc:
                return sha, name, f"{type(exc).__name__}: {exc}"

        self._decoding.append(self._worker.submit(job))

    def _collect_decoded(self) -> None:
        for f in [f for f in self._decoding if f.done()]:
            self._decoding.remove(f)
            result = f.result()
            if result is None:  # a preview
                continue
            sha, name, error = result
            self.state.decoded(sha)
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
        events = self.rx.receive(data, now)
        accepted = self.rx.stats.frames_received != before
        if accepted:
            info = frame_info(data)
            epoch = self.rx.replay_state.epoch  # an accepted frame's epoch is the window's
            keep = info.type in (FrameType.DATA, FrameType.PARITY) and epoch is not None
            if keep and not self.rx.is_complete(info.bundle_id, epoch):
                self._batch.append((epoch, info.bundle_id, bytes(data)))
        self._on_events(events, now)
        return accepted

    # the TimedNode interface for wait_and_fire
    def next_timer(self) -> float | None:
        return self.rx.next_timer()

    def handle_timeout(self, now: float) -> list[Event]:
        events = self.rx.handle_timeout(now)
        self._on_events(events, now)
        return events

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

    def close(self) -> None:
        if self.web is not None:
            self.web.close()
        self.transport.close()
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._cot.shutdown(wait=True)
        self._collect_decoded()
        self.state.close()
        self.log.close()
