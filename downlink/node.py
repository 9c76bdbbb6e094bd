"""The ground receiver node: protocol Receiver, reassembly, the one output writer, decoding.

Every ground receiver is this node: ``downlink receive`` and the simulator drive it
directly, ``downlink serve`` (:mod:`downlink.service`) drives it and adds what a long-running
service needs (the SQLite state that survives a restart, previews, the live page, the
hand-off). A driver feeds frames with :meth:`receive` and sends what :meth:`poll_transmit`
returns on the reverse link — the same interface as :class:`~textboost.protocol.Receiver`.

Text first: the first section of a bundle is the header and the text section, so the words
are known as soon as it lands, long before the image: the node makes a :class:`TextResult`
(``texts``, the ``on_text`` callback) and, with an ``out_dir``, writes
``partial/eEPOCH_bBUNDLE.json`` (:mod:`downlink.store` holds the layout). Sooner still: the
text section is a prefix code (most valuable words first), so as the first section's bytes
arrive frame by frame (:class:`~textboost.protocol.SectionProgress`) each new whole word is
handed out the same way, in a result with ``complete=False``, before the section's check.

A bundle is parsed once: its first section when it lands (its words read then, once), the
rest when the bundle is whole. Its container gives the `.tbx` bytes, the truth (hashed and
stored), and goes to the decode with them and the words
(:class:`~textboost.pipeline.parsed.Parsed`), parsed and read no second time. With an
``out_dir`` its ``NAME.tbx`` and ``NAME.json`` are written durably, and only then is its FIN
queued (the Receiver runs with ``fin_on_delivery=False``), so a crash never loses an image
the sender counts as delivered. A ``ledger`` (the service's SQLite state) may know the image
already (a resend after a restart): it is FINed again and written nowhere. Complete bundles
are decoded at once (or handed to a worker: ``defer_decode``); at the end of a pass
(:meth:`finish`) incomplete bundles are decoded from the sections that arrived in order. A
decode failure is recorded, never raised. The codec is loaded lazily on the first decode;
decoding fuses the words into the image when the codec has its fusion block
(``fusion=None``, the default).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from downlink.store import GroundStore, image_name
from textboost.bitstream.container import BitstreamError, Container, SectionKind
from textboost.codec.image import load_image, psnr_db
from textboost.pipeline.loader import PipelineLoader
from textboost.pipeline.parsed import Parsed
from textboost.protocol import (
    BundleDelivered,
    Event,
    LinkConfig,
    Receiver,
    ReceiverGaveUp,
    ReplayState,
    SectionDelivered,
    SectionProgress,
)
from textboost.text.payload import decode_words, read_prefix
from textboost.text.words import Word

__all__ = [
    "BundleResult", "Delivery", "DownlinkNode", "Ledger", "TextResult", "WholeBundle", "psnr_db",
    "read_first_words", "read_text", "words_json",
]  # fmt: skip

Key = tuple[int, int]  # (sender epoch, bundle id)


def words_json(words) -> list[dict[str, Any]]:
    """Words as JSON: ``{"text": str, "quad": [[x, y] x 4], "score": float, "restored":
    float}`` (pixels, clockwise from the top-left of the text as read; the spotter's
    confidence as carried, 1.0 from a stream that carries none; how much of the fusion
    block the sender let it have, 0 where drawn glyphs would stray from the photo)."""
    return [
        {
            "text": w.text,
            "quad": [[round(float(x), 1), round(float(y), 1)] for x, y in w.quad],
            "score": round(float(w.score), 3),
            "restored": round(float(w.restore), 3),
        }
        for w in words
    ]


@dataclass(slots=True)
class TextResult:
    """The words of one bundle, known once its first section (header and text) landed."""

    bundle_id: int
    time_s: float  # when the text section was delivered
    width: int | None = None
    height: int | None = None
    text_bytes: int = 0
    words: list[dict[str, Any]] = field(default_factory=list)  # see :func:`words_json`
    capture: dict[str, Any] | None = None  # the header's capture metadata (CaptureMeta.to_json)
    error: str | None = None
    epoch: int = 0  # the sender's
    section_bytes: int = 0  # of the first section (header and text)
    complete: bool = True  # False: the first words only, read before the section's check
    total_words: int | None = None  # words the whole section holds (None: not known yet)
    # the section parsed and its words as read (complete results; None: unreadable), so
    # that the bundle's container and its decode parse and read them no second time
    head: Container | None = field(default=None, repr=False, compare=False)
    read: list[Word] | None = field(default=None, repr=False, compare=False)

    @property
    def strings(self) -> list[str]:
        return [w["text"] for w in self.words]

    def record(self) -> dict[str, Any]:
        """The fields an image's JSON record takes from its words."""
        return {k: getattr(self, k) for k in
                ("width", "height", "text_bytes", "words", "capture", "error")}  # fmt: skip


@dataclass(slots=True)
class BundleResult:
    """What the ground made of one bundle."""

    bundle_id: int
    complete: bool  # every section arrived
    sections_delivered: int  # in-order prefix
    n_sections: int | None  # from the descriptor (None if it never arrived)
    groups_delivered: int  # y groups in the decoded container
    bytes_delivered: int  # section bytes in the prefix
    time_s: float  # when this result was made
    decoded: bool = False
    width: int | None = None
    height: int | None = None
    text_bytes: int = 0
    text_s: float | None = None  # when the words were known (the text section landed)
    words: list[dict[str, Any]] = field(default_factory=list)  # see :func:`words_json`
    capture: dict[str, Any] | None = None  # as :attr:`TextResult.capture`
    png_path: str | None = None
    tbx_path: str | None = None
    psnr_db: float | None = None
    error: str | None = None
    epoch: int = 0  # the sender's
    image: str | None = None  # NAME of ``NAME.tbx`` (complete bundles)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A whole bundle, stored (or recognised) and FINed."""

    key: Key
    image: str  # its name (16 hex digits of the SHA-256)
    sha256: str
    n_bytes: int
    duplicate: bool  # the ledger knew it: FINed again, written nowhere


class Ledger(Protocol):
    """What a receiver remembers across restarts (the service's SQLite state)."""

    def known(self, sha256: str) -> str | None:
        """The stored image of this SHA-256, if any."""

    def delivered(self, key: Key, sha256: str, name: str, n_bytes: int, duplicate: bool) -> None:
        """Record the bundle as stored, durably: its FIN follows."""


def read_text(bundle_id: int, section: bytes, now: float, epoch: int = 0) -> TextResult:
    """The words (and capture metadata) of a bundle's first section, the header and text;
    an unreadable section gives a result with ``error`` set, never an exception."""
    res = TextResult(bundle_id, now, epoch=epoch, section_bytes=len(section))
    try:
        res.head = c = Container.from_sections([section])
        res.width, res.height = c.header.width, c.header.height
        res.text_bytes = len(c.text)
        read = decode_words(c.text, res.width, res.height)
        res.words, res.read = words_json(read), read
        res.total_words = len(res.words)
        if c.header.meta is not None:
            res.capture = c.header.meta.to_json()
    except (BitstreamError, ValueError) as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    return res


def read_first_words(
    bundle_id: int, prefix: bytes, now: float, epoch: int = 0
) -> TextResult | None:
    """The header and the whole words in the leading bytes of a bundle's first section
    (``complete=False``); None while no word is readable yet or the bytes are malformed
    (the whole section, checked, decides then)."""
    try:
        head = Container.parse_head(prefix)
        if head is None:
            return None
        header, text = head
        words, total = read_prefix(text, header.width, header.height)
    except BitstreamError:
        return None
    if not words:
        return None
    res = TextResult(bundle_id, now, header.width, header.height, len(text), epoch=epoch,
                     section_bytes=len(prefix), complete=False, total_words=total)  # fmt: skip
    res.words = words_json(words)
    if header.meta is not None:
        res.capture = header.meta.to_json()
    return res


@dataclass(slots=True)
class WholeBundle:
    """A delivered bundle waiting for its decode (:meth:`DownlinkNode.take_complete`)."""

    key: Key
    sections: int
    section_bytes: int
    data: bytes  # the `.tbx` bytes (parsed once)
    now: float
    name: str | None = None
    container: Container | None = None  # None: the sections did not parse (error)
    error: str | None = None
    words: list[Word] | None = None  # the carried words, as read when they landed

    @property
    def parsed(self) -> Parsed:
        """What the decoder is handed (needs ``container``)."""
        assert self.container is not None
        return Parsed(self.data, self.container, self.words)

    @property
    def bundle_id(self) -> int:
        return self.key[1]


_SHIPPED = object()  # codec_factory default: the shipped model, through a PipelineLoader


class DownlinkNode:
    """Args:
    config: the link protocol configuration (equal to the sender's).
    epoch: the receiver's epoch, on its NAK and FIN frames: never the same twice under one key.
    replay_state: the persisted replay window of a restarted receiver.
    out_dir: where the layout of :mod:`downlink.store` goes (None: no files).
    references: original image (file or HxWx3 uint8 array) per bundle id, for PSNR.
    codec_factory: a :class:`PipelineLoader` or a callable that builds the decoder on first
        use (default: the shipped model); None reassembles without decoding.
    defer_decode: queue complete bundles for :meth:`decode_pending` instead of decoding
        inside :meth:`receive` (a field driver sends the FIN first, then decodes).
    fusion: passed to the codec's ``decode``: None fuses the words when the codec has its
        fusion block, False decodes with the codec alone.
    max_pixels: the decoder's limit on a header's width x height (None: the codec's).
    ledger: remembers stored images across restarts (None: every bundle is new).
    on_text: called with each :class:`TextResult` as soon as a text section lands.
    on_group: called with a bundle's key and its sections so far as each y group lands.
    on_delivered: called with each :class:`Delivery` once it is stored and FINed.
    """

    def __init__(
        self,
        config: LinkConfig,
        *,
        out_dir: str | Path | None = None,
        references: Mapping[int, str | Path | np.ndarray] | None = None,
        codec_factory: PipelineLoader | Callable[[], Any] | None = _SHIPPED,  # type: ignore[assignment]
        defer_decode: bool = False,
        fusion: bool | None = None,
        max_pixels: int | None = None,
        ledger: Ledger | None = None,
        on_text: Callable[[TextResult], None] | None = None,
        on_group: Callable[[Key, list[bytes]], None] | None = None,
        on_delivered: Callable[[Delivery], None] | None = None,
        epoch: int = 0,
        replay_state: ReplayState | None = None,
    ) -> None:
        self.receiver = Receiver(
            config, epoch, replay_state, fin_on_delivery=False, progress=True
        )
        self.fusion = fusion
        self.max_pixels = max_pixels
        self.ledger = ledger
        self.on_text, self.on_group, self.on_delivered = on_text, on_group, on_delivered
        self.texts: dict[int, TextResult] = {}
        self.defer_decode = defer_decode
        self._complete: list[WholeBundle] = []
        self.store = GroundStore(out_dir) if out_dir is not None else None
        self.out_dir = self.store.out if self.store is not None else None
        self.references = dict(references or {})
        if codec_factory is _SHIPPED:
            codec_factory = PipelineLoader()
        elif codec_factory is not None and not isinstance(codec_factory, PipelineLoader):
            codec_factory = PipelineLoader(factory=codec_factory)
        self.loader: PipelineLoader | None = codec_factory
        self.results: dict[int, BundleResult] = {}
        self._prefix: dict[Key, list[bytes]] = {}
        self._restoring = False

    # --- the Receiver interface ---------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[Event]:
        """As :meth:`Receiver.receive`; stores, FINs and (unless deferred) decodes each
        bundle as it completes."""
        return self._handle(self.receiver.receive(data, now), now)

    def handle_timeout(self, now: float) -> list[Event]:
        return self._handle(self.receiver.handle_timeout(now), now)

    def restore_frame(self, data: bytes) -> list[Event]:
        """After a restart: a frame the service kept (:meth:`Receiver.restore_frame`); its
        sections are reassembled again, without writing, calling back or decoding."""
        self._restoring = True
        try:
            return self._handle(self.receiver.restore_frame(data, 0.0), 0.0)
        finally:
            self._restoring = False

    def _handle(self, events: list[Event], now: float) -> list[Event]:
        for e in events:
            key = (e.epoch, e.bundle_id)
            if isinstance(e, SectionDelivered):
                self._section(key, e, now)
            elif isinstance(e, SectionProgress):
                self._first_words(e, now)
            elif isinstance(e, BundleDelivered):
                self._deliver(key, list(e.sections), now)
            elif isinstance(e, ReceiverGaveUp):
                self._prefix.pop(key, None)
                if self.store is not None and e.epoch != self.receiver.replay_state.epoch:
                    self.store.drop_partial(key)  # the sender restarted: it resends
        if not self.defer_decode:
            self.decode_pending()
        return events

    def poll_transmit(self, now: float) -> list[bytes]:
        return self.receiver.poll_transmit(now)

    def next_timer(self) -> float | None:
        return self.receiver.next_timer()

    @property
    def bundles_complete(self) -> int:
        """Bundles the protocol has delivered whole (decoded or not yet)."""
        return sum(r.delivered_s is not None for r in self.receiver.records.values())

    # --- text first, and each group ------------------------------------------------------

    def _first_words(self, e: SectionProgress, now: float) -> None:
        if self._restoring:
            return
        res = read_first_words(e.bundle_id, e.data, now, e.epoch)
        old = self.texts.get(e.bundle_id)
        if res is None or (
            old is not None and old.epoch == e.epoch and len(old.words) >= len(res.words)
        ):
            return  # nothing new
        self.texts[e.bundle_id] = res
        if self.store is not None:
            doc = {"epoch": e.epoch, "bundle": e.bundle_id, **res.record()}
            self.store.write_text((e.epoch, e.bundle_id), doc)
        if self.on_text is not None:
            self.on_text(res)

    def _section(self, key: Key, e: SectionDelivered, now: float) -> None:
        sections = self._prefix.setdefault(key, [])
        sections.append(e.data)
        if self._restoring:
            return
        if e.index == SectionKind.TEXT:
            res = read_text(e.bundle_id, e.data, now, e.epoch)
            self.texts[e.bundle_id] = res
            if self.store is not None:
                self.store.write_text(key, {"epoch": key[0], "bundle": key[1], **res.record()})
            if self.on_text is not None:
                self.on_text(res)
        elif e.index >= Container.IMAGE_SECTIONS and self.on_group is not None:
            self.on_group(key, list(sections))

    # --- a whole bundle: stored, then FINed ----------------------------------------------

    def _deliver(self, key: Key, sections: list[bytes], now: float) -> None:
        self._prefix.pop(key, None)
        text = self._text_of(key)
        whole = WholeBundle(key, len(sections), sum(map(len, sections)), b"", now)
        try:
            self._parse(whole, sections, text)
        except (BitstreamError, ValueError) as exc:  # a sender bug: keep the bytes anyway
            whole.data, whole.error = b"".join(sections), f"{type(exc).__name__}: {exc}"
        sha = hashlib.sha256(whole.data).hexdigest()
        known = self.ledger.known(sha) if self.ledger is not None else None
        whole.name = known or image_name(sha)
        if known is None and self.store is not None:
            if text is None:
                text = read_text(key[1], sections[0], now, key[0])
            self.store.write_image(whole.name, whole.data, {
                "image": whole.name, "sha256": sha, "bytes": len(whole.data), "epoch": key[0],
                "bundle": key[1], "delivered_t": round(time.time(), 6), **text.record(),
                "strings": text.strings, "error": whole.error or text.error,
            })  # fmt: skip
        if self.ledger is not None:
            self.ledger.delivered(key, sha, whole.name, len(whole.data), known is not None)
        self.receiver.acknowledge(key[1], key[0])  # on disk: now the FIN
        if self.store is not None:
            self.store.drop_partial(key)
        if known is None and not self._restoring:
            self._complete.append(whole)
        if self.on_delivered is not None:
            self.on_delivered(Delivery(key, whole.name, sha, len(whole.data), known is not None))

    def _text_of(self, key: Key) -> TextResult | None:
        """The words read when this bundle's first section landed (None: not this bundle's,
        or a restart reassembling what it kept)."""
        text = self.texts.get(key[1])
        return None if text is None or text.epoch != key[0] or self._restoring else text

    @staticmethod
    def _parse(whole: WholeBundle, sections: list[bytes], text: TextResult | None) -> None:
        """``whole``'s container and `.tbx` bytes from its sections; the first section is
        parsed only if it was not when it landed, and its words are kept for the decode."""
        head = None if text is None else text.head
        whole.container = Container.from_sections(sections, head)
        whole.data = whole.container.to_bytes()
        whole.words = None if text is None else text.read

    # --- decoding -----------------------------------------------------------------------

    def decode_pending(self) -> list[BundleResult]:
        """Decode bundles that completed since the last call. Returns: their results."""
        return self.decode(self.take_complete())

    def take_complete(self) -> list[WholeBundle]:
        """Hand over the bundles completed since the last call (for a decode worker)."""
        done, self._complete = self._complete, []
        return done

    def decode(self, complete: list[WholeBundle]) -> list[BundleResult]:
        """Decode bundles handed over by :meth:`take_complete` (safe in a worker thread
        while :meth:`receive` runs: it touches only the codec, the files and ``results``)."""
        return [self._finalize(w, complete=True) for w in complete]

    def decode_stored(self, name: str, now: float = 0.0) -> BundleResult:
        """Decode ``NAME.tbx`` again (a restarted service: its PNG was not written)."""
        assert self.store is not None
        data = self.store.tbx_path(name).read_bytes()
        whole = WholeBundle((-1, -1), 0, len(data), data, now, name=name)
        try:
            whole.container = Container.parse(data)
            whole.sections = len(whole.container.to_sections())
        except (BitstreamError, ValueError) as exc:
            whole.error = f"{type(exc).__name__}: {exc}"
        return self._finalize(whole, complete=True)

    def finish(self, now: float) -> list[BundleResult]:
        """Decode every bundle that is still incomplete from its in-order prefix.

        Returns:
            All results, by bundle id.
        """
        self.decode_pending()
        for bundle_id, record in self.receiver.records.items():
            if bundle_id not in self.results:
                key = (record.epoch, bundle_id)
                sections = self._prefix.pop(key, [])
                whole = WholeBundle(key, len(sections), sum(map(len, sections)), b"", now)
                if sections:
                    try:
                        self._parse(whole, sections, self._text_of(key))
                    except (BitstreamError, ValueError) as exc:
                        whole.error = f"{type(exc).__name__}: {exc}"
                self._finalize(whole, complete=False, n=record.n_sections)
        return [self.results[k] for k in sorted(self.results)]

    def _finalize(self, w: WholeBundle, *, complete: bool, n: int | None = None) -> BundleResult:
        epoch, bundle_id = w.key
        res = BundleResult(
            bundle_id=bundle_id, complete=complete, sections_delivered=w.sections,
            n_sections=w.sections if complete else n,
            groups_delivered=Container.groups_in(w.sections), bytes_delivered=w.section_bytes,
            time_s=w.now, epoch=epoch, image=w.name if complete else None,
        )  # fmt: skip
        if bundle_id >= 0:
            self.results[bundle_id] = res
        text = self.texts.get(bundle_id)
        if text is not None and text.epoch == epoch:
            res.text_s, res.words, res.capture = text.time_s, text.words, text.capture
        if not w.sections and w.container is None:
            res.error = "header and text never arrived"
            return res
        try:
            self._decode(res, w, complete)
        except (BitstreamError, ValueError, OSError, RuntimeError) as exc:
            res.error = f"{type(exc).__name__}: {exc}"
        return res

    def _decode(self, res: BundleResult, w: WholeBundle, complete: bool) -> None:
        if w.container is None:
            res.error = w.error
            return
        h = w.container.header
        res.width, res.height, res.text_bytes = h.width, h.height, len(w.container.text)
        png = None
        if self.store is not None:
            if complete and w.name is not None:
                res.tbx_path, png = str(self.store.tbx_path(w.name)), self.store.png_path(w.name)
            else:
                res.tbx_path = str(self.store.write_prefix(w.key, w.data))
                png = self.store.partial_path(w.key, ".png")
        if w.sections < Container.IMAGE_SECTIONS:
            res.error = "z never arrived: text only, no image"
            return
        if self.loader is None:
            return
        kw: dict[str, Any] = {} if self.fusion is None else {"fusion": self.fusion}
        if self.max_pixels is not None:
            kw["max_pixels"] = self.max_pixels
        img = np.asarray(self.loader().decode(w.parsed, **kw))
        res.decoded = True
        if png is not None:
            GroundStore.write_png(img, png)
            res.png_path = str(png)
        ref = self.references.get(res.bundle_id)
        if isinstance(ref, np.ndarray):
            res.psnr_db = psnr_db(ref, img)
        elif ref is not None:
            res.psnr_db = psnr_db(load_image(ref), img)
