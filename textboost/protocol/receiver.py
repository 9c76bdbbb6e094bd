"""The receiving side: reassembly, verification, FEC recovery, NAK/FIN generation (sans-IO).

Theory of operation. Frames are checked (FCS, tag, fields) and dropped with a count if
bad. DATA fragments are stored by (section, fragment index); the descriptor (section 255)
gives each section's length, class and CRC-32, hence its fragment count. A section is
complete when all its fragments are present and the reassembled bytes match length and
CRC-32; a CRC failure discards the section's fragments so ARQ fetches them again. Complete
sections are handed out as an in-order prefix (:class:`SectionDelivered`), so the driver can
decode a partial image from header, z and the first groups; when all are in,
:class:`BundleDelivered` follows and a FIN is queued.

Gaps: the receiver tracks the furthest first-pass position of each bundle (frames flagged
RETX do not move it). ``arq="immediate"`` NAKs a fragment the first time it is seen to be
missing behind that position; ``"deferred"`` waits for EOF and NAKs everything missing.
Both answer every EOF (including re-sent ones) with NAKs or FIN, and re-NAK what is still
missing every ``nak_timeout_s`` up to ``max_retries`` times. ``"none"`` sends nothing.
"""

from __future__ import annotations

import zlib
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
    DESCRIPTOR_SECTION,
    Descriptor,
    Flag,
    Frame,
    FrameType,
    NakRange,
    decode_frame,
    encode_frame,
    encode_nak,
)
from textboost.protocol.records import ReceiverBundleRecord, ReceiverStats

__all__ = ["Receiver"]

KEEP_DONE_BUNDLES = 1024  # completed bundles remembered (to re-FIN, to drop duplicates)
_REST = -1  # NAK bookkeeping: "everything from here on" of a section of unknown length


@dataclass(slots=True)
class _RxBundle:
    bundle_id: int
    record: ReceiverBundleRecord
    descriptor: Descriptor | None = None
    fragments: dict[int, dict[int, bytes]] = field(default_factory=dict)
    last: dict[int, int] = field(default_factory=dict)  # section -> index of LAST fragment
    complete: dict[int, bytes] = field(default_factory=dict)
    prefix: int = 0
    done: bool = False
    hwm: tuple[int, int] | None = None  # furthest first-pass (section, fragment) seen
    eof_seen: bool = False
    naked: set[tuple[int, int]] = field(default_factory=set)  # NAKed since the last timeout
    nak_pending: set[tuple[int, int]] = field(default_factory=set)  # to go in the next poll
    nak_deadline_s: float | None = None
    nak_retries: int = 0
    parity: dict[tuple[int, int], dict[int, bytes]] = field(default_factory=dict)
    group_size: dict[tuple[int, int], int] = field(default_factory=dict)

    def rank(self, section: int) -> int:
        """Position of a section in the sender's first-pass order (descriptor first)."""
        if section == DESCRIPTOR_SECTION:
            return -1
        d = self.descriptor
        return (d.classes[section] << 8) | section if d is not None else section


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
        s, i = frame.section, frame.index
        self._check_fragment(b, s, i, bool(frame.flags & Flag.LAST), len(frame.payload))
        ahead = b.hwm is None or (b.rank(s), i) > (b.rank(b.hwm[0]), b.hwm[1])
        if ahead and not frame.flags & Flag.RETX:
            b.hwm = (s, i)
        self._store(b, s, i, frame.flags, frame.payload, now, events)
        if self.config.fec:
            self._try_recover(b, s, i // self.config.fec_k, now, events)

    def _check_fragment(self, b: _RxBundle, s: int, i: int, last: bool, size: int) -> None:
        """Raises: FrameError if the fragment cannot belong to the bundle."""
        full = self.config.fragment_payload_bytes
        if not last and size != full:
            raise FrameError("payload length", size, f"{full} bytes (not the last fragment)")
        if last and not 1 <= size <= full:
            raise FrameError("payload length", size, f"1..{full} bytes (last fragment)")
        if s in b.last and (i > b.last[s] or (last and i != b.last[s])):
            raise FrameError("fragment index", i, f"0..{b.last[s]} for section {s}")
        d = b.descriptor
        if d is not None and s != DESCRIPTOR_SECTION:
            if s >= len(d.lengths):
                raise FrameError("section", s, f"0..{len(d.lengths) - 1} or 255")
            n = self.config.n_fragments(d.lengths[s])
            if i >= n or last != (i == n - 1):
                raise FrameError("fragment index", i, f"0..{n - 1} (LAST on {n - 1})")

    def _store(
        self,
        b: _RxBundle,
        s: int,
        i: int,
        flags: int,
        payload: bytes,
        now: float,
        events: list[Event],
    ) -> None:
        if s in b.complete:
            self.stats.duplicates += 1
            return
        frags = b.fragments.setdefault(s, {})
        if i in frags:
            self.stats.duplicates += 1
            return
        frags[i] = payload
        if flags & Flag.LAST:
            b.last[s] = i
        if s == DESCRIPTOR_SECTION:
            self._try_descriptor(b, now, events)
        else:
            self._try_section(b, s, now, events)

    def _try_descriptor(self, b: _RxBundle, now: float, events: list[Event]) -> None:
        frags = b.fragments.get(DESCRIPTOR_SECTION, {})
        last = b.last.get(DESCRIPTOR_SECTION)
        if b.descriptor is not None or last is None or len(frags) != last + 1:
            return
        raw = b"".join(frags[k] for k in range(last + 1))
        try:
            d = Descriptor.parse(raw)
        except FrameError:
            del b.fragments[DESCRIPTOR_SECTION], b.last[DESCRIPTOR_SECTION]
            self.stats.section_crc_failures += 1
            return
        b.descriptor = d
        b.complete[DESCRIPTOR_SECTION] = raw
        b.record.n_sections = len(d.lengths)
        b.record.section_delivered_s = [None] * len(d.lengths)
        # Fragments stored before the descriptor may not fit it: re-check them.
        for s in [s for s in b.fragments if s != DESCRIPTOR_SECTION]:
            n = self.config.n_fragments(d.lengths[s]) if s < len(d.lengths) else 0
            bad = s >= len(d.lengths) or any(k >= n for k in b.fragments[s])
            if bad or (s in b.last and b.last[s] != n - 1):
                del b.fragments[s]
                b.last.pop(s, None)
                self.stats.dropped_malformed += 1
        if b.hwm is not None and b.hwm[0] not in b.fragments and b.hwm[0] not in b.complete:
            b.hwm = None  # it pointed into a section the descriptor rejected
        for s in range(len(d.lengths)):
            self._try_section(b, s, now, events)

    def _try_section(self, b: _RxBundle, s: int, now: float, events: list[Event]) -> None:
        d = b.descriptor
        if d is None or s in b.complete:
            return
        n = self.config.n_fragments(d.lengths[s])
        frags = b.fragments.get(s, {})
        if len(frags) != n:
            return
        data = b"".join(frags[k] for k in range(n))
        b.fragments.pop(s, None)
        if len(data) != d.lengths[s] or zlib.crc32(data) != d.crcs[s]:
            b.last.pop(s, None)
            self.stats.section_crc_failures += 1
            return
        b.complete[s] = data
        while b.prefix < len(d.lengths) and b.prefix in b.complete:
            k = b.prefix
            b.record.section_delivered_s[k] = now
            events.append(
                SectionDelivered(bundle_id=b.bundle_id, time_s=now, index=k, data=b.complete[k])
            )
            b.prefix += 1
        if b.prefix == len(d.lengths):
            b.done = True
            b.record.delivered_s = now
            b.nak_deadline_s = None
            b.parity.clear()
            b.fragments.clear()
            self._done.append(b.bundle_id)
            if len(self._done) > KEEP_DONE_BUNDLES:  # ids wrap at 65536: forget old ones
                old = self._done.popleft()
                if self._bundles.get(old) is not None and self._bundles[old].done:
                    del self._bundles[old]
            sections = tuple(b.complete[k] for k in range(len(d.lengths)))
            events.append(BundleDelivered(bundle_id=b.bundle_id, time_s=now, sections=sections))
            self._queue_fin(b)

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
        key = (frame.section, frame.index)
        if b.group_size.setdefault(key, n_src) != n_src:
            raise FrameError("parity n_src", n_src, f"{b.group_size[key]} as before")
        rows = b.parity.setdefault(key, {})
        if p in rows:
            self.stats.duplicates += 1
            return
        rows[p] = frame.payload[2:]
        self._try_recover(b, frame.section, frame.index, now, events)

    def _try_recover(self, b: _RxBundle, s: int, g: int, now: float, events: list[Event]) -> None:
        key = (s, g)
        n_src, parity = b.group_size.get(key), b.parity.get(key)
        if n_src is None or not parity or s in b.complete:
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
            if i in frags or s in b.complete:
                continue
            flags, payload = fec.unpack_row(row)
            self._check_fragment(b, s, i, bool(flags & Flag.LAST), len(payload))
            self.stats.fec_recovered += 1
            self._store(b, s, i, flags, payload, now, events)
        b.parity.pop(key, None)

    # --- NAK / FIN --------------------------------------------------------------------------

    def _missing(self, b: _RxBundle, behind_hwm: bool) -> list[tuple[int, int]]:
        """Missing (section, fragment) pairs; fragment ``_REST`` = the unknown rest."""
        out: list[tuple[int, int]] = []
        if behind_hwm and b.hwm is None:
            return out
        hwm = (b.rank(b.hwm[0]), b.hwm[1]) if behind_hwm and b.hwm is not None else None
        sections: list[int] = [DESCRIPTOR_SECTION]
        if b.descriptor is not None:
            n = len(b.descriptor.lengths)
            sections += sorted(range(n), key=b.rank)
        else:
            sections += sorted(s for s in b.fragments if s != DESCRIPTOR_SECTION)
        for s in sections:
            if s in b.complete:
                continue
            rank = b.rank(s)
            if hwm is not None and rank > hwm[0]:
                break
            frags = b.fragments.get(s, {})
            if s != DESCRIPTOR_SECTION and b.descriptor is not None:
                n = self.config.n_fragments(b.descriptor.lengths[s])
            elif s in b.last:
                n = b.last[s] + 1
            else:
                n = None
            top = n if n is not None else max(frags, default=-1) + 1
            if hwm is not None and rank == hwm[0]:
                top = min(top, hwm[1])
            out += [(s, i) for i in range(top) if i not in frags]
            if n is None and (hwm is None or rank < hwm[0]):
                out.append((s, _REST))
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
            (
                m
                for m in b.nak_pending
                if m[0] not in b.complete and m[1] not in b.fragments.get(m[0], ())
            ),
            key=lambda m: (b.rank(m[0]), m[1] if m[1] != _REST else 1 << 20),
        )
        b.nak_pending.clear()
        ranges: list[NakRange] = []
        for s, i in pending:
            last = ranges[-1] if ranges else None
            if i == _REST:
                start = max(b.fragments.get(s, {}), default=-1) + 1
                ranges.append(NakRange(s, start, 0))
            elif last and last.section == s and last.count and last.start + last.count == i:
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
        if b is None or b.descriptor is None:
            return []
        return [b.complete[k] for k in range(b.prefix)]

    def is_complete(self, bundle_id: int) -> bool:
        b = self._bundles.get(bundle_id)
        return b is not None and b.done
