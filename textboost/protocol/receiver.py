"""The receiving side: reassembly, verification, FEC recovery, NAK/FIN generation (sans-IO).

Theory of operation. Frames are checked (FCS, tag, fields) and dropped with a count if
bad. DATA fragments are stored by (segment, fragment index). Segment 0 opens with the
descriptor; once its first fragments are in, the layout (:mod:`~textboost.protocol.layout`)
tells which bytes of which segment hold each section. A section is complete when the
fragments covering it are present and its bytes match length and check value; a mismatch
discards those fragments so ARQ fetches them again. Complete sections are handed out as an
in-order prefix (:class:`SectionDelivered`), so the driver can decode a partial image from
header, z and the first groups; when all are in, :class:`BundleDelivered` follows and a FIN
is queued.

Gaps: the receiver tracks the furthest first-pass position of each bundle (frames flagged
RETX do not move it). ``arq="immediate"`` NAKs a fragment the first time it is seen to be
missing behind that position; ``"deferred"`` waits for EOF and NAKs everything missing.
Both answer every EOF (including re-sent ones) with NAKs or FIN, and re-NAK what is still
missing every ``nak_timeout_s`` up to ``max_retries`` times. ``"none"`` sends nothing.
NAKs found between two polls go out merged in as few frames as fit.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

from textboost.protocol import fec
from textboost.protocol.config import LinkConfig
from textboost.protocol.errors import (
    AuthenticationError,
    CorruptFrameError,
    FrameError,
    RemoteProtocolError,
)
from textboost.protocol.events import (
    BundleDelivered,
    Event,
    ReceiverGaveUp,
    SectionDelivered,
)
from textboost.protocol.frames import (
    Descriptor,
    Flag,
    Frame,
    FrameType,
    NakRange,
    decode_frame,
    encode_frame,
    encode_nak,
    section_check,
)
from textboost.protocol.layout import Layout
from textboost.protocol.records import ReceiverBundleRecord, ReceiverStats

__all__ = ["Receiver"]

KEEP_DONE_BUNDLES = 1024  # completed bundles remembered (to re-FIN, to drop duplicates)
_REST = -1  # NAK bookkeeping: "everything from here on" of a segment of unknown length


@dataclass(slots=True)
class _RxBundle:
    bundle_id: int
    record: ReceiverBundleRecord
    descriptor: Descriptor | None = None
    layout: Layout | None = None
    fragments: dict[int, dict[int, bytes]] = field(default_factory=dict)  # by segment
    last: dict[int, int] = field(default_factory=dict)  # segment -> index of LAST fragment
    complete: dict[int, bytes] = field(default_factory=dict)  # verified sections
    prefix: int = 0
    done: bool = False
    hwm: tuple[int, int] | None = None  # furthest first-pass (segment, fragment) seen
    eof_seen: bool = False
    naked: set[tuple[int, int]] = field(default_factory=set)  # NAKed since the last timeout
    nak_pending: set[tuple[int, int]] = field(default_factory=set)  # to go in the next poll
    nak_deadline_s: float | None = None
    nak_retries: int = 0
    parity: dict[tuple[int, int], dict[int, bytes]] = field(default_factory=dict)
    group_size: dict[tuple[int, int], int] = field(default_factory=dict)


class Receiver:
    """Sans-IO receiver. See the module docstring for the theory of operation.

    Attributes:
        stats: counters over all bundles (:class:`ReceiverStats`).
        records: per-bundle records by bundle id (:class:`ReceiverBundleRecord`).
    """

    def __init__(self, config: LinkConfig) -> None:
        self.config = config
        self.stats = ReceiverStats()
        self.records: dict[int, ReceiverBundleRecord] = {}
        self._bundles: dict[int, _RxBundle] = {}
        self._done: deque[int] = deque()  # completed bundles, oldest first
        self._outbox: list[bytes] = []
        self._nak_due: dict[int, None] = {}  # bundles with NAKs for the next poll, in order

    # --- input ------------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[Event]:
        """Feed one frame from the forward link.

        Returns:
            Events in order: :class:`SectionDelivered` for each section that extends a
            bundle's delivered prefix, then :class:`BundleDelivered` when it is whole.
        Raises:
            Nothing for bad bytes: corrupt, forged or malformed frames are counted in
            ``stats`` and dropped, and nothing already received is lost.
        """
        try:
            frame = decode_frame(data, self.config)
        except CorruptFrameError:
            self.stats.dropped_corrupt += 1
            return []
        except AuthenticationError:
            self.stats.dropped_auth += 1
            return []
        except RemoteProtocolError:
            self.stats.dropped_malformed += 1
            return []
        self.stats.frames_received += 1
        self.stats.bytes_received += len(data)
        events: list[Event] = []
        try:
            self._on_frame(frame, now, events)
        except RemoteProtocolError:
            self.stats.dropped_malformed += 1
        return events

    def _bundle(self, bundle_id: int, now: float) -> _RxBundle:
        b = self._bundles.get(bundle_id)
        if b is None:
            record = ReceiverBundleRecord(bundle_id=bundle_id, first_frame_s=now)
            b = self._bundles[bundle_id] = _RxBundle(bundle_id=bundle_id, record=record)
            self.records[bundle_id] = record
        return b

    def _on_frame(self, frame: Frame, now: float, events: list[Event]) -> None:
        if frame.type in (FrameType.NAK, FrameType.FIN):
            raise FrameError("type", frame.type.name, "DATA, PARITY or EOF at a receiver")
        b = self._bundle(frame.bundle_id, now)
        if frame.type is FrameType.EOF:
            b.eof_seen = True
            if b.done:
                self._queue_fin(b)
            else:
                self._nak(b, now, behind_hwm=False, only_new=False)
            return
        if b.done:
            self.stats.duplicates += 1
            return
        if frame.type is FrameType.PARITY:
            self._on_parity(b, frame, now, events)
        else:
            self._on_data(b, frame, now, events)
        if self.config.arq == "immediate" and not b.done:
            self._nak(b, now, behind_hwm=True, only_new=True)

    def _on_data(self, b: _RxBundle, frame: Frame, now: float, events: list[Event]) -> None:
        g, i = frame.segment, frame.index
        self._check_fragment(b, g, i, bool(frame.flags & Flag.LAST), len(frame.payload))
        if not frame.flags & Flag.RETX and (b.hwm is None or (g, i) > b.hwm):
            b.hwm = (g, i)
        self._store(b, g, i, frame.flags, frame.payload, now, events)
        if self.config.fec:
            self._try_recover(b, g, i // self.config.fec_k, now, events)

    def _n_fragments(self, b: _RxBundle, g: int) -> int | None:
        """Fragments of segment ``g``, if known (from the layout or a LAST flag)."""
        if b.layout is not None:
            return self.config.n_fragments(b.layout.segment_lengths[g])
        return b.last[g] + 1 if g in b.last else None

    def _check_fragment(self, b: _RxBundle, g: int, i: int, last: bool, size: int) -> None:
        """Raises: FrameError if the fragment cannot belong to the bundle."""
        full = self.config.fragment_payload_bytes
        if not last and size != full:
            raise FrameError("payload length", size, f"{full} bytes (not the last fragment)")
        if last and not 1 <= size <= full:
            raise FrameError("payload length", size, f"1..{full} bytes (last fragment)")
        if b.layout is not None and g >= len(b.layout.segment_lengths):
            raise FrameError("segment", g, f"0..{len(b.layout.segment_lengths) - 1}")
        n = self._n_fragments(b, g)
        if n is not None and (i >= n or last != (i == n - 1)):
            raise FrameError("fragment index", i, f"0..{n - 1} (LAST on {n - 1})")
        if b.layout is not None and last:
            tail = b.layout.segment_lengths[g] - (n - 1) * full
            if size != tail:
                raise FrameError("payload length", size, f"{tail} bytes (last fragment)")

    def _store(
        self,
        b: _RxBundle,
        g: int,
        i: int,
        flags: int,
        payload: bytes,
        now: float,
        events: list[Event],
    ) -> None:
        frags = b.fragments.setdefault(g, {})
        if i in frags:
            self.stats.duplicates += 1
            return
        frags[i] = payload
        if flags & Flag.LAST:
            b.last[g] = i
        if b.layout is None:
            if g == 0:
                self._try_descriptor(b, now, events)
            return
        size = self.config.fragment_payload_bytes
        seg_len = b.layout.segment_lengths[g]
        for k in b.layout.members[g]:
            if k not in b.complete and i in b.layout.spans[k].fragments(size, seg_len):
                self._try_section(b, k, now, events)

    def _try_descriptor(self, b: _RxBundle, now: float, events: list[Event]) -> None:
        frags = b.fragments.get(0, {})
        head = bytearray()
        for k in itertools.count():
            if k not in frags:
                break
            head += frags[k]
        try:
            parsed = Descriptor.parse_prefix(bytes(head), self.config.crc_bits)
        except FrameError:
            parsed = None
            if 0 in b.last and len(frags) == b.last[0] + 1:  # all of segment 0, still bad
                b.fragments.pop(0, None)
                b.last.pop(0, None)
                self.stats.section_crc_failures += 1
            return
        if parsed is None:
            return
        d, d_len = parsed
        b.descriptor, b.layout = d, Layout.of(d, d_len, self.config.policy)
        b.record.n_sections = len(d.lengths)
        b.record.section_delivered_s = [None] * len(d.lengths)
        # Fragments stored before the layout was known may not fit it: check them again.
        for g in list(b.fragments):
            for i, payload in list(b.fragments[g].items()):
                try:
                    self._check_fragment(b, g, i, b.last.get(g) == i, len(payload))
                except FrameError:
                    del b.fragments[g][i]
                    self.stats.dropped_malformed += 1
            if g in b.last and b.last[g] not in b.fragments[g]:
                del b.last[g]
        if b.hwm is not None and b.hwm[0] >= len(b.layout.segment_lengths):
            b.hwm = None
        for k in range(len(d.lengths)):
            self._try_section(b, k, now, events)

    def _try_section(self, b: _RxBundle, k: int, now: float, events: list[Event]) -> None:
        d, layout = b.descriptor, b.layout
        if d is None or layout is None or k in b.complete:
            return
        size = self.config.fragment_payload_bytes
        span = layout.spans[k]
        frags = b.fragments.get(span.segment, {})
        idx = span.fragments(size, layout.segment_lengths[span.segment])
        if any(f not in frags for f in idx):
            return
        start = span.offset - (idx.start * size if len(idx) else 0)
        data = b"".join(frags[f] for f in idx)[start : start + span.length]
        if len(data) != span.length or section_check(data, self.config.crc_bits) != d.checks[k]:
            for f in idx:  # fetch them again
                frags.pop(f, None)
            self.stats.section_crc_failures += 1
            return
        b.complete[k] = data
        while b.prefix < len(d.lengths) and b.prefix in b.complete:
            j = b.prefix
            b.record.section_delivered_s[j] = now
            events.append(
                SectionDelivered(bundle_id=b.bundle_id, time_s=now, index=j, data=b.complete[j])
            )
            b.prefix += 1
        if b.prefix == len(d.lengths):
            b.done = True
            b.record.delivered_s = now
            b.nak_deadline_s = None
            b.parity.clear()
            b.fragments.clear()
            sections = tuple(b.complete[j] for j in range(len(d.lengths)))
            events.append(BundleDelivered(bundle_id=b.bundle_id, time_s=now, sections=sections))
            self._queue_fin(b)
            self._done.append(b.bundle_id)
            if len(self._done) > KEEP_DONE_BUNDLES:  # ids wrap at 65536: forget old ones
                old = self._done.popleft()
                if self._bundles.get(old) is not None and self._bundles[old].done:
                    del self._bundles[old]

    # --- FEC --------------------------------------------------------------------------------

    def _on_parity(self, b: _RxBundle, frame: Frame, now: float, events: list[Event]) -> None:
        cfg = self.config
        if not cfg.fec:
            raise FrameError("type", "PARITY", "no PARITY frames (FEC is off)")
        if len(frame.payload) < 3:
            raise FrameError("parity payload length", len(frame.payload), "at least 3 bytes")
        p, n_src = frame.payload[0], frame.payload[1]
        if not 1 <= n_src <= cfg.fec_k or p >= cfg.parity_frames(n_src):
            raise FrameError(
                "parity index", (p, n_src), f"n_src 1..{cfg.fec_k}, index < parity frames"
            )
        key = (frame.segment, frame.index)
        if b.group_size.setdefault(key, n_src) != n_src:
            raise FrameError("parity n_src", n_src, f"{b.group_size[key]} as before")
        rows = b.parity.setdefault(key, {})
        if p in rows:
            self.stats.duplicates += 1
            return
        rows[p] = frame.payload[2:]
        self._try_recover(b, frame.segment, frame.index, now, events)

    def _try_recover(self, b: _RxBundle, s: int, g: int, now: float, events: list[Event]) -> None:
        """Rebuild missing fragments of FEC group ``g`` of segment ``s`` if enough arrived."""
        key = (s, g)
        n_src, parity = b.group_size.get(key), b.parity.get(key)
        if n_src is None or not parity:
            return
        k = self.config.fec_k
        frags = b.fragments.get(s, {})
        idx = range(g * k, g * k + n_src)
        if all(i in frags for i in idx):
            return
        n_par = self.config.parity_frames(n_src)
        last = b.last.get(s)
        rows = [
            fec.row_for(Flag.LAST if i == last else 0, frags[i]) if i in frags else None
            for i in idx
        ]
        recovered = fec.decode_group(rows, [parity.get(p) for p in range(n_par)])
        if recovered is None:
            return
        for i, row in zip(idx, recovered, strict=True):
            if i in frags or b.done:
                continue
            flags, payload = fec.unpack_row(row)
            self._check_fragment(b, s, i, bool(flags & Flag.LAST), len(payload))
            self.stats.fec_recovered += 1
            self._store(b, s, i, flags, payload, now, events)
        b.parity.pop(key, None)

    # --- NAK / FIN --------------------------------------------------------------------------

    def _missing(self, b: _RxBundle, behind_hwm: bool) -> list[tuple[int, int]]:
        """Missing (segment, fragment) pairs in sending order; fragment ``_REST`` stands for
        the rest of a segment whose length is not known yet."""
        out: list[tuple[int, int]] = []
        if behind_hwm and b.hwm is None:
            return out
        hwm = b.hwm if behind_hwm else None
        layout = b.layout
        if layout is not None:
            segments = list(range(len(layout.segment_lengths)))
        else:
            segments = sorted({0, *b.fragments})
        for g in segments:
            if hwm is not None and g > hwm[0]:
                break
            if layout is not None and all(k in b.complete for k in layout.members[g]):
                continue
            frags = b.fragments.get(g, {})
            n = self._n_fragments(b, g)
            top = n if n is not None else max(frags, default=-1) + 1
            if hwm is not None and g == hwm[0]:
                top = min(top, hwm[1])
            out += [(g, i) for i in range(top) if i not in frags]
            if n is None and (hwm is None or g < hwm[0]):
                out.append((g, _REST))
        return out

    def _nak(self, b: _RxBundle, now: float, behind_hwm: bool, only_new: bool) -> None:
        if self.config.arq == "none" or b.done:
            return
        missing = self._missing(b, behind_hwm)
        if only_new:
            missing = [m for m in missing if m not in b.naked]
        if not missing:
            return
        b.naked.update(missing)
        b.nak_pending.update(missing)
        self._nak_due[b.bundle_id] = None
        b.nak_deadline_s = now + self.config.nak_timeout_s

    def _queue_fin(self, b: _RxBundle) -> None:
        if self.config.arq == "none":
            return
        self._send(encode_frame(Frame(type=FrameType.FIN, bundle_id=b.bundle_id), self.config))
        self.stats.fin_frames += 1

    def _send(self, data: bytes) -> None:
        self._outbox.append(data)
        self.stats.control_bytes += len(data)

    def poll_transmit(self, now: float) -> list[bytes]:
        """NAK and FIN frames for the reverse link (empty with ``arq="none"``).

        Gaps found since the last poll are merged into as few NAK frames as fit the MTU,
        leaving out fragments that arrived in the meantime.
        """
        for bundle_id in self._nak_due:
            b = self._bundles.get(bundle_id)
            if b is not None and not b.done:
                self._flush_naks(b)
        self._nak_due.clear()
        out, self._outbox = self._outbox, []
        return out

    def _flush_naks(self, b: _RxBundle) -> None:
        pending = sorted(
            (m for m in b.nak_pending if m[1] not in b.fragments.get(m[0], ())),
            key=lambda m: (m[0], m[1] if m[1] != _REST else 1 << 20),
        )
        b.nak_pending.clear()
        ranges: list[NakRange] = []
        for s, i in pending:
            last = ranges[-1] if ranges else None
            if i == _REST:
                start = max(b.fragments.get(s, {}), default=-1) + 1
                ranges.append(NakRange(s, start, 0))
            elif last and last.segment == s and last.count and last.start + last.count == i:
                ranges[-1] = NakRange(s, last.start, last.count + 1)
            else:
                ranges.append(NakRange(s, i, 1))
        max_payload = self.config.mtu_bytes - self.config.frame_overhead_bytes
        for payload in encode_nak(ranges, max_payload):
            frame = Frame(type=FrameType.NAK, bundle_id=b.bundle_id, payload=payload)
            self._send(encode_frame(frame, self.config))
            self.stats.nak_frames += 1
            b.record.naks_sent += 1

    # --- timers -----------------------------------------------------------------------------

    def next_timer(self) -> float | None:
        """The earliest time :meth:`handle_timeout` has work, or None."""
        deadlines = [
            b.nak_deadline_s for b in self._bundles.values() if b.nak_deadline_s is not None
        ]
        return min(deadlines, default=None)

    def handle_timeout(self, now: float) -> list[Event]:
        """Re-NAK what is still missing; give up after ``max_retries`` repeats.

        Returns:
            :class:`ReceiverGaveUp` events.
        """
        events: list[Event] = []
        for b in self._bundles.values():
            if b.nak_deadline_s is None or b.nak_deadline_s > now or b.done:
                continue
            b.nak_deadline_s = None
            b.nak_retries += 1
            if b.nak_retries > self.config.max_retries:
                b.record.gave_up_s = now
                events.append(
                    ReceiverGaveUp(bundle_id=b.bundle_id, time_s=now, delivered_sections=b.prefix)
                )
                continue
            b.naked.clear()
            self._nak(b, now, behind_hwm=not b.eof_seen, only_new=False)
        return events

    # --- queries ----------------------------------------------------------------------------

    def delivered_sections(self, bundle_id: int) -> list[bytes]:
        """The in-order prefix of verified sections of a bundle (empty if unknown)."""
        b = self._bundles.get(bundle_id)
        if b is None:
            return []
        return [b.complete[k] for k in range(b.prefix)]

    def is_complete(self, bundle_id: int) -> bool:
        b = self._bundles.get(bundle_id)
        return b is not None and b.done
