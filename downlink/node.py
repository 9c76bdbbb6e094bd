"""The ground receiver node: protocol Receiver, reassembly, decoding, outputs, metrics.

A driver (``link_sim`` or :mod:`downlink.udp`) feeds frames with :meth:`receive` and
sends what :meth:`poll_transmit` returns on the reverse link — the same interface as
:class:`~textboost.protocol.Receiver`. Complete bundles are decoded at once; at the end
of a pass (:meth:`finish`) incomplete bundles are decoded from the sections that arrived
in order. A decode failure is recorded, never raised. The codec is loaded lazily on the
first decode.

Text first: the first section of a bundle is the header and the text section, so the words
are known as soon as it lands, long before the image. The node then makes a
:class:`TextResult` (``texts``, the ``on_text`` callback) and, with an ``out_dir``, writes
``bundle_NNNNN.json`` (the words with their quads and strings); when the image is decoded
the same file gains the image's result. Decoding fuses the words into the image when the
codec has its fusion block (``fusion=None``, the default); ``fusion=False`` decodes with the
codec alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from textboost.codec.container import BitstreamError, Container, SectionKind
from textboost.codec.image import load_image, psnr_db
from textboost.codec.loader import CodecLoader
from textboost.protocol import BundleDelivered, Event, LinkConfig, Receiver, SectionDelivered
from textboost.text.payload import decode_words

__all__ = ["BundleResult", "DownlinkNode", "TextResult", "psnr_db", "read_text", "words_json"]


def words_json(words) -> list[dict[str, Any]]:
    """Words as JSON: ``{"text": str, "quad": [[x, y] x 4], "score": float}`` (pixels,
    clockwise from the top-left of the text as read; the spotter's confidence as
    carried, 1.0 from a stream that carries none)."""
    return [
        {
            "text": w.text,
            "quad": [[round(float(x), 1), round(float(y), 1)] for x, y in w.quad],
            "score": round(float(w.score), 3),
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

    @property
    def strings(self) -> list[str]:
        return [w["text"] for w in self.words]


@dataclass(slots=True)
class BundleResult:
    """What the ground made of one bundle (one JSON line in the metrics file)."""

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


def read_text(bundle_id: int, section: bytes, now: float) -> TextResult:
    """The words (and capture metadata) of a bundle's first section, the header and text;
    an unreadable section gives a result with ``error`` set, never an exception."""
    res = TextResult(bundle_id, now)
    try:
        c = Container.from_sections([section])
        res.width, res.height = c.header.width, c.header.height
        res.text_bytes = len(c.text)
        res.words = words_json(decode_words(c.text, res.width, res.height))
        if c.header.meta is not None:
            res.capture = c.header.meta.to_json()
    except (BitstreamError, ValueError) as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    return res


_SHIPPED = object()  # codec_factory default: the shipped model, through a CodecLoader


class DownlinkNode:
    """Args:
    config: the link protocol configuration (equal to the sender's).
    epoch: the receiver's epoch, on its NAK and FIN frames: never the same twice under one key.
    out_dir: where PNGs, reassembled `.tbx` files and ``metrics.jsonl`` go (None: no files).
    references: original image (file or HxWx3 uint8 array) per bundle id, for PSNR.
    codec_factory: a :class:`CodecLoader` or a callable that builds the decoder on first
        use (default: the shipped model); None reassembles without decoding.
    defer_decode: queue complete bundles for :meth:`decode_pending` instead of decoding
        inside :meth:`receive` (a field driver sends the FIN first, then decodes).
    fusion: passed to the codec's ``decode``: None fuses the words when the codec has its
        fusion block, False decodes with the codec alone.
    on_text: called with each :class:`TextResult` as soon as a text section lands.
    """

    def __init__(
        self,
        config: LinkConfig,
        *,
        out_dir: str | Path | None = None,
        references: Mapping[int, str | Path | np.ndarray] | None = None,
        codec_factory: CodecLoader | Callable[[], Any] | None = _SHIPPED,  # type: ignore[assignment]
        defer_decode: bool = False,
        fusion: bool | None = None,
        on_text: Callable[[TextResult], None] | None = None,
        epoch: int = 0,
    ) -> None:
        self.receiver = Receiver(config, epoch=epoch)
        self.fusion = fusion
        self.on_text = on_text
        self.texts: dict[int, TextResult] = {}
        self.defer_decode = defer_decode
        self._complete: list[tuple[int, list[bytes], float]] = []
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.references = dict(references or {})
        if codec_factory is _SHIPPED:
            codec_factory = CodecLoader()
        elif codec_factory is not None and not isinstance(codec_factory, CodecLoader):
            codec_factory = CodecLoader(factory=codec_factory)
        self.loader: CodecLoader | None = codec_factory
        self.results: dict[int, BundleResult] = {}
        self._prefix: dict[int, list[bytes]] = {}

    # --- the Receiver interface ---------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[Event]:
        """As :meth:`Receiver.receive`; decodes each bundle as it completes."""
        events = self.receiver.receive(data, now)
        for e in events:
            if isinstance(e, SectionDelivered):
                self._prefix.setdefault(e.bundle_id, []).append(e.data)
                if e.index == SectionKind.TEXT:
                    self._text_landed(e.bundle_id, e.data, now)
            elif isinstance(e, BundleDelivered):
                self._complete.append((e.bundle_id, list(e.sections), now))
        if not self.defer_decode:
            self.decode_pending()
        return events

    def decode_pending(self) -> list[BundleResult]:
        """Decode bundles that completed since the last call.

        Returns:
            Their results.
        """
        return self.decode(self.take_complete())

    def take_complete(self) -> list[tuple[int, list[bytes], float]]:
        """Hand over the bundles completed since the last call (for a decode worker)."""
        done, self._complete = self._complete, []
        return done

    def decode(self, complete: list[tuple[int, list[bytes], float]]) -> list[BundleResult]:
        """Decode bundles handed over by :meth:`take_complete` (safe in a worker thread
        while :meth:`receive` runs: it touches only the codec and ``results``)."""
        for bundle_id, sections, now in complete:
            self._finalize(bundle_id, sections, complete=True, now=now)
        return [self.results[b] for b, _, _ in complete]

    @property
    def bundles_complete(self) -> int:
        """Bundles the protocol has delivered whole (decoded or not yet)."""
        return sum(r.delivered_s is not None for r in self.receiver.records.values())

    def poll_transmit(self, now: float) -> list[bytes]:
        return self.receiver.poll_transmit(now)

    def next_timer(self) -> float | None:
        return self.receiver.next_timer()

    def handle_timeout(self, now: float) -> list[Event]:
        return self.receiver.handle_timeout(now)

    # --- text first ---------------------------------------------------------------------

    def _text_landed(self, bundle_id: int, section: bytes, now: float) -> None:
        """Read the words of a bundle's first section; publish them before the image."""
        res = read_text(bundle_id, section, now)
        self.texts[bundle_id] = res
        self._write_json(bundle_id, {"text": asdict(res)})
        if self.on_text is not None:
            self.on_text(res)

    def json_path(self, bundle_id: int) -> Path | None:
        """``bundle_NNNNN.json`` beside the bundle's PNG (None without an ``out_dir``)."""
        return None if self.out_dir is None else self.out_dir / f"bundle_{bundle_id:05d}.json"

    def _write_json(self, bundle_id: int, doc: dict[str, Any]) -> None:
        path = self.json_path(bundle_id)
        if path is None:
            return
        tmp = path.with_suffix(".json.part")
        tmp.write_text(json.dumps({"bundle_id": bundle_id, **doc}, indent=1) + "\n")
        tmp.replace(path)  # a reader never sees half a file

    # --- results ------------------------------------------------------------------------

    def finish(self, now: float) -> list[BundleResult]:
        """Decode every bundle that is still incomplete from its in-order prefix.

        Returns:
            All results, by bundle id.
        """
        self.decode_pending()
        for bundle_id, record in self.receiver.records.items():
            if bundle_id not in self.results:
                sections = self._prefix.get(bundle_id, [])
                self._finalize(bundle_id, sections, complete=False, now=now, n=record.n_sections)
        return [self.results[k] for k in sorted(self.results)]

    def _finalize(
        self,
        bundle_id: int,
        sections: list[bytes],
        *,
        complete: bool,
        now: float,
        n: int | None = None,
    ) -> None:
        res = BundleResult(
            bundle_id=bundle_id,
            complete=complete,
            sections_delivered=len(sections),
            n_sections=len(sections) if complete else n,
            groups_delivered=Container.groups_in(len(sections)),
            bytes_delivered=sum(map(len, sections)),
            time_s=now,
        )
        self.results[bundle_id] = res
        self._prefix.pop(bundle_id, None)
        text = self.texts.get(bundle_id)
        if text is not None:
            res.text_s, res.words, res.capture = text.time_s, text.words, text.capture
        if not sections:
            res.error = "header and text never arrived"
        else:
            try:
                self._decode(res, sections)
            except (BitstreamError, ValueError, OSError, RuntimeError) as exc:
                res.error = f"{type(exc).__name__}: {exc}"
        if self.out_dir is not None:
            with open(self.out_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(asdict(res)) + "\n")
            image = {k: v for k, v in asdict(res).items() if k not in ("bundle_id", "words")}
            self._write_json(
                bundle_id, {"text": asdict(text) if text else None, "image": image}
            )

    def _decode(self, res: BundleResult, sections: list[bytes]) -> None:
        container = Container.from_sections(sections)
        h = container.header
        res.width, res.height, res.text_bytes = h.width, h.height, len(container.text)
        stem = f"bundle_{res.bundle_id:05d}"
        data = container.to_bytes()
        if self.out_dir is not None:
            res.tbx_path = str(self.out_dir / f"{stem}.tbx")
            Path(res.tbx_path).write_bytes(data)
        if len(sections) < Container.IMAGE_SECTIONS:
            res.error = "z never arrived: text only, no image"
            return
        if self.loader is None:
            return
        kw = {} if self.fusion is None else {"fusion": self.fusion}
        img = np.asarray(self.loader().decode(data, **kw))
        res.decoded = True
        if self.out_dir is not None:
            from PIL import Image

            res.png_path = str(self.out_dir / f"{stem}.png")
            Image.fromarray(img).save(res.png_path)
        ref = self.references.get(res.bundle_id)
        if isinstance(ref, np.ndarray):
            res.psnr_db = psnr_db(ref, img)
        elif ref is not None:
            res.psnr_db = psnr_db(load_image(ref), img)
