"""The receiving side: reassembly, verification, FEC recovery, NAK/FIN generation (sans-IO).

Theory of operation. Frames are checked (FCS, tag, fields) and dropped with a count if
bad. DATA fragments are stored by (segment, fragment index). Segment 0 opens with the
descriptor; once its first fragments are in, the layout (:mod:`~textboost.protocol.layout`)
tells which bytes of which segment hold each section. A section is complete when the
fragments covering it are present and its bytes match length and check value; a mismatch
discards those fragments so ARQ fetches them again. Complete sections are handed out as an
in-order prefix (:class:`SectionDelivered`), so the driver can decode a partial image from
header, z and the first groups; when all are in, :class:`BundleDelivered` follows and a FIN
is queued. With ``progress=True`` the first section's leading bytes are handed out as they
grow (:class:`SectionProgress`: the text section is a prefix code, so its first words are
read before the rest lands); each of those bytes passed its frame's check, the section's
own check comes with :class:`SectionDelivered`.

Gaps: the receiver tracks the furthest first-pass position of each bundle (frames flagged
RETX do not move it). ``arq="immediate"`` NAKs a fragment the first time it is seen to be
missing behind that position; ``"deferred"`` waits for EOF and NAKs everything missing.
With ``policy="words_first"`` the end of the words comes first in both: the sender sends
segment 0 (header and words) of every queued bundle before any later segment, so a
first-pass frame of a later segment shows that the segment 0 of its own bundle, and of every
bundle whose segment-0 frames carry lower packet numbers, has gone out; what is missing of
those (a lost last word frame too) is NAKed then, not at the bundle's EOF after its picture,
and the sender re-sends it before any first-pass frame. A words segment lost whole names
no bundle the receiver knows; it leaves a gap in the sender's packet numbers, so at a
first-pass picture frame the receiver also NAKs, once, the packet numbers it has not seen
since the last such frame (``PN_SEGMENT`` ranges, never one above the frame's own), unless
the gap is only the picture's own frames (the frame's place in its segment moved by as much
as its packet number); the sender re-sends those that were words and ignores the rest.
Both answer every EOF (including re-sent ones) with NAKs or FIN, and re-NAK what is still
missing every ``nak_timeout_s`` up to ``max_retries`` times. ``"none"`` sends nothing.
NAKs found between two polls go out merged in as few frames as fit. Missing fragments are
kept as ranges, never one entry per fragment.

Security and bounds: every frame passes the FCS, the tag (with a key) and the replay window
(:mod:`~textboost.protocol.replay`) before anything is stored; a short-form frame is read
with the epoch the window holds and its packet number rebuilt against the window's top,
and FCS and tag cover both, so nothing is taken on a wrong guess; bundles are named by the
sender's epoch and bundle id. A descriptor may claim at most ``max_bundle_bytes``; a bundle
stores at most that (plus its descriptor) before its layout is known; all bundles under
reassembly hold at most ``receiver_memory_bytes`` of fragments and parity (given-up
bundles are evicted first). Every dropped frame is counted in ``stats`` and described in
:meth:`Receiver.take_drops`.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from dataclasses import dataclass, field

from textboost.protocol import fec
from textboost.protocol.config import (
    FEC_ROW_PREFIX_BYTES,
    MAX_PACKET_NUMBER,
    PARITY_PREFIX_BYTES,
    LinkConfig,
)
from textboost.protocol.errors import (
    AuthenticationError,
    CorruptFrameError,
    FrameError,
    LocalProtocolError,
    RemoteProtocolError,
    UnsyncedFrameError,
    VersionError,
)
from textboost.protocol.events import (
    BundleDelivered,
    Event,
    FrameDropped,
    ReceiverGaveUp,
    SectionDelivered,
    SectionProgress,
)
from textboost.protocol.frames import (
    MAX_SECTIONS,
    PN_SEGMENT,
    Descriptor,
    Flag,
    Frame,
    FrameType,
    NakRange,
    decode_frame,
    encode_feedback,
    encode_frame,
    encode_nak,
    section_check,
)
from textboost.protocol.layout import Layout
from textboost.protocol.records import ReceiverBundleRecord, ReceiverStats
from textboost.protocol.replay import KEYLESS_RECOVER_AFTER, ReplayState, ReplayWindow

__all__ = ["Receiver"]

KEEP_DONE_BUNDLES = 1024  # completed bundles remembered (to re-FIN, to drop late RETX)
KEEP_DROPS = 1024  # dropped-frame records kept for the driver's log (oldest go first)
KEEP_PN_NAKS = 64  # packet-number NAK ranges waiting for a poll (oldest go first)
# Short-form frames that came before any long-form frame of their sender (no epoch to read
# them with: a lost HELLO) are held, at most this many, and read again once one has come.
UNSYNCED_KEEP = 32
MAX_DESCRIPTOR_BYTES = 2 + (MAX_SECTIONS - 1) * (5 + 1 + 4)
_ALL = (1 << 9, 0)  # NAK mark past every (segment, fragment)

_Key = tuple[int, int]  # (sender epoch, bundle id)
_Range = tuple[int, int, int | None]  # (segment, first fragment, stop or None = to the end)


@dataclass(slots=True)
class _RxBundle:
    bundle_id: int
    epoch: int
    record: ReceiverBundleRecord
    descriptor: Descriptor | None = None
    layout: Layout | None = None
    fragments: dict[int, dict[int, bytes]] = field(default_factory=dict)  # by segment
    last: dict[int, int] = field(default_factory=dict)  # segment -> index of LAST fragment
    complete: dict[int, bytes] = field(default_factory=dict)  # verified sections
    prefix: int = 0
    progress: int = 0  # bytes of section 0 last handed out in a SectionProgress
    done: bool = False
    acked: bool = False  # FIN allowed (at once, or once the driver acknowledged)
    gave_up: bool = False
    hwm: tuple[int, int] | None = None  # furthest first-pass (segment, fragment) seen
    eof_seen: bool = False
    words_pn: int = -1  # the highest packet number of a first-pass frame of segment 0
    words_checked: bool = False  # words_first: segment 0's first pass known to be over
    nak_mark: tuple[int, int] | None = None  # gaps before it NAKed since the last timeout
    nak_pending: list[_Range] = field(default_factory=list)  # to go in the next poll
    nak_deadline_s: float | None = None
    nak_retries: int = 0
    parity: dict[tuple[int, int], dict[int, bytes]] = field(default_factory=dict)
    group_size: dict[tuple[int, int], int] = field(default_factory=dict)
    mem: int = 0  # fragment + parity bytes held

    @property
    def key(self) -> _Key:
        return (self.epoch, self.bundle_id)


def _gaps(present: list[int], start: int, stop: int | None) -> list[tuple[int, int | None]]:
    """The runs of ``start .. stop-1`` (``stop`` None: to the end) not in ``present``
    (sorted), as (start, stop) pairs; the last is open-ended when ``stop`` is None."""
    out: list[tuple[int, int | None]] = []
    pos = start
    lo = bisect.bisect_left(present, start)
    hi = len(present) if stop is None else bisect.bisect_left(present, stop)
    for i in present[lo:hi]:
        if i > pos:
            out.append((pos, i))
        pos = i + 1
    if stop is None:
        out.append((pos, None))
    elif pos < stop:
        out.append((pos, stop))
    return out


class Receiver:
    """Sans-IO receiver. See the module docstring for the theory of operation.

    Args:
        config: the link configuration (equal to the sender's).
        epoch: this end's epoch, stamped on its NAK and FIN frames: never the same twice
            under one key (see :mod:`~textboost.protocol.replay` for how to choose it).
        replay_state: the window over the sender's frames as persisted from
            :attr:`replay_state` before a restart (None: a fresh window).
        fin_on_delivery: True: FIN a bundle as soon as it is whole; False: only once the
            driver calls :meth:`acknowledge` (after it made the bundle durable), so a crash
            between delivery and storage never loses an image the sender counts as sent.
        progress: emit :class:`SectionProgress` as section 0's leading bytes grow.

    Attributes:
        stats: counters over all bundles (:class:`ReceiverStats`).
        records: per-bundle records by bundle id, the latest sender epoch's for each id
            (:class:`ReceiverBundleRecord`, whose ``epoch`` names the session).
    """

    def __init__(
        self,
        config: LinkConfig,
        epoch: int = 0,
        replay_state: ReplayState | None = None,
        *,
        fin_on_delivery: bool = True,
        progress: bool = False,
    ) -> None:
        if not 0 <= epoch <= 0xFFFF_FFFF:
            raise LocalProtocolError(f"epoch {epoch}: expected 0..2^32-1")
        self.config = config
        self.fin_on_delivery = fin_on_delivery
        self.progress = progress
        self.epoch = epoch
        self.stats = ReceiverStats()
        self.records: dict[int, ReceiverBundleRecord] = {}
        self._bundles: dict[_Key, _RxBundle] = {}
        self._done: deque[_Key] = deque()  # completed bundles, oldest first
        self._outbox: list[bytes] = []
        self._nak_due: dict[_Key, None] = {}  # bundles with NAKs for the next poll, in order
        self._window = ReplayWindow(
            config.replay_window,
            replay_state,
            recover_after=None if config.auth_key is not None else KEYLESS_RECOVER_AFTER,
        )
        self._pn = 0
        self._mem = 0
        # bundles not done (under reassembly or given up), oldest first; at most this many,
        # so a flood of forged bundle ids cannot grow the receiver without bound
        self._open: dict[_Key, None] = {}
        self.max_open_bundles = max(16, config.receiver_memory_bytes // 4096)
        self._drops: deque[FrameDropped] = deque(maxlen=KEEP_DROPS)
        self._unsynced: deque[bytes] = deque()  # see UNSYNCED_KEEP
        # words_first: bundles whose segment-0 frames came and whose end is not yet known
        self._words_open: dict[_Key, None] = {}
        # words_first: the last first-pass DATA/PARITY frame (epoch, bundle id, segment, its
        # place in the segment's first pass, packet number), the packet number below which
        # gaps were NAKed (epoch, number), and packet-number NAKs for the next poll
        self._last_first: tuple[int, int, int, int, int] | None = None
        self._pn_asked: tuple[int, int] = (-1, -1)
        self._pn_pending: deque[tuple[int, int, NakRange]] = deque(maxlen=KEEP_PN_NAKS)

    @property
    def replay_state(self) -> ReplayState:
        """The window over the sender's frames, to persist with each delivered bundle."""
        return self._window.state

    def take_drops(self) -> list[FrameDropped]:
        """Dropped-frame records since the last call (at most the last 1024), for logging."""
        out = list(self._drops)
        self._drops.clear()
        return out

    def _drop(self, now: float, reason: str, detail: str, frame: Frame | None = None) -> None:
        setattr(self.stats, f"dropped_{reason}", getattr(self.stats, f"dropped_{reason}") + 1)
        self._drops.append(FrameDropped.of(now, reason, detail, frame))

    # --- input ------------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[Event]:
        """Feed one frame from the forward link.

        Returns:
            Events in order: :class:`SectionDelivered` for each section that extends a
            bundle's delivered prefix, then :class:`BundleDelivered` when it is whole;
            :class:`ReceiverGaveUp` for unfinished bundles of an older sender epoch when a
            newer one appears (the sender restarted; they can never complete).
        Raises:
            Nothing for bad bytes: corrupt, forged, replayed, stale or malformed frames are
            counted in ``stats``, described in :meth:`take_drops` and dropped, and nothing
            already received is lost.
        """
        frame = self._parse(data, now)
        if frame is None:
            return []
        verdict = self._window.check(frame.epoch, frame.pn)
        if verdict == "stale_epoch" and self._window.recover(frame.epoch, frame.pn):
            verdict = "new_epoch"  # keyless: the real sender, after a forged newer epoch
        if verdict in ("replay", "too_old", "stale_epoch"):
            reason = "replay" if verdict == "replay" else "stale"
            self._drop(now, reason, f"{verdict}: epoch {frame.epoch} packet {frame.pn}", frame)
            return []
        events: list[Event] = []
        if verdict == "new_epoch" and self._window.epoch is not None:
            self._retire_other_epochs(frame.epoch, now, events)
        self._window.accept(frame.epoch, frame.pn)
        self.stats.frames_received += 1
        self.stats.bytes_received += len(data)
        try:
            self._on_frame(frame, now, events)
            self._packet_gaps(frame)
        except RemoteProtocolError as e:
            self._drop(now, "malformed", str(e), frame)
        if self._unsynced:  # the sender's epoch is known now: read the held frames again
            held, self._unsynced = list(self._unsynced), deque()
            for d in held:
                events += self.receive(d, now)
        return events

    def _parse(self, data: bytes, now: float) -> Frame | None:
        """The frame, or None (dropped and counted) if it fails the FCS, the tag or parsing."""
        try:
            return decode_frame(data, self.config, self._window.state)
        except CorruptFrameError as e:
            self._drop(now, "corrupt", str(e))
        except AuthenticationError as e:
            self._drop(now, "auth", str(e))
        except VersionError as e:
            self._drop(now, "version", str(e))
        except UnsyncedFrameError as e:
            # Held until a long-form frame gives the epoch (then checked and counted like
            # any frame); the oldest is dropped when more than UNSYNCED_KEEP wait.
            if len(self._unsynced) == UNSYNCED_KEEP:
                self._unsynced.popleft()
                self._drop(now, "stale", f"{e}; held, then pushed out by newer ones")
            self._unsynced.append(bytes(data))
        except RemoteProtocolError as e:
            self._drop(now, "malformed", str(e))
        return None

    def restore_frame(self, data: bytes, now: float) -> list[Event]:
        """After a restart: re-feed a frame this receiver accepted before it (the driver
        persisted it, with :attr:`replay_state`, and restores both). The frame passes the
        FCS and the tag but not the replay window, which the restored state already covers
        (so replays of it are still dropped).

        Returns:
            As :meth:`receive`.
        """
        frame = self._parse(data, now)
        if frame is None:
            return []
        events: list[Event] = []
        try:
            self._on_frame(frame, now, events)
        except RemoteProtocolError as e:
            self._drop(now, "malformed", str(e), frame)
        return events

    @staticmethod
    def _give_up(b: _RxBundle, now: float, events: list[Event]) -> None:
        """Mark a bundle that can no longer complete, with its event."""
        b.record.gave_up_s = now
        b.gave_up = True
        events.append(
            ReceiverGaveUp(
                bundle_id=b.bundle_id, time_s=now, epoch=b.epoch, delivered_sections=b.prefix
            )
        )

    def _retire_other_epochs(self, epoch: int, now: float, events: list[Event]) -> None:
        """The sender restarted (or, keyless, a forged newer epoch was left behind): bundles
        of every other epoch can never complete; free them."""
        for key, b in list(self._bundles.items()):
            if key[0] == epoch:
                continue
            if not b.done and not b.gave_up:
                self._give_up(b, now, events)
            self._free(b)
            self._nak_due.pop(key, None)
            self._open.pop(key, None)
            self._words_open.pop(key, None)
            del self._bundles[key]
        self._done = deque(k for k in self._done if k[0] == epoch)

    def _bundle(self, frame: Frame, now: float) -> _RxBundle | None:
        key = (frame.epoch, frame.bundle_id)
        b = self._bundles.get(key)
        if b is None:
            if len(self._open) >= self.max_open_bundles and not self._evict_given_up():
                return None
            self._open[key] = None
            record = ReceiverBundleRecord(
                bundle_id=frame.bundle_id, first_frame_s=now, epoch=frame.epoch
            )
            b = self._bundles[key] = _RxBundle(
                bundle_id=frame.bundle_id, epoch=frame.epoch, record=record
            )
            self.records[frame.bundle_id] = record
        return b

    def _evict_given_up(self) -> bool:
        """Forget the oldest given-up bundle (its record too if nothing of it was delivered).
        False if every open bundle is still under reassembly."""
        for key in self._open:
            b = self._bundles[key]
            if b.gave_up:
                self._free(b)
                del self._bundles[key], self._open[key]
                self._words_open.pop(key, None)
                if b.prefix == 0 and self.records.get(b.bundle_id) is b.record:
                    del self.records[b.bundle_id]
                return True
        return False

    def _on_frame(self, frame: Frame, now: float, events: list[Event]) -> None:
        if frame.type in (FrameType.NAK, FrameType.FIN):
            raise FrameError("type", frame.type.name, "DATA, PARITY, EOF or HELLO at a receiver")
        if frame.type is FrameType.HELLO:
            return  # it carried the sender's epoch and packet number: the window has them
        if frame.payload and frame.type is FrameType.EOF:
            raise FrameError("EOF payload length", len(frame.payload), "0 bytes")
        b = self._bundle(frame, now)
        if b is None:
            self._drop(now, "memory", f"{self.max_open_bundles} bundles open", frame)
            return
        if frame.type is FrameType.EOF:
            b.eof_seen = True
            if b.done:
                if b.acked:
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
        if self.config.policy == "words_first" and not frame.flags & Flag.RETX:
            self._words_checkpoint(b, frame, now)
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
            return self.config.n_fragments(b.layout.segment_lengths[g], b.bundle_id)
        return b.last[g] + 1 if g in b.last else None

    def _check_fragment(self, b: _RxBundle, g: int, i: int, last: bool, size: int) -> None:
        """Raises: FrameError if the fragment cannot belong to the bundle."""
        full = self.config.fragment_bytes(b.bundle_id)
        if not last and size != full:
            raise FrameError("payload length", size, f"{full} bytes (not the last fragment)")
        if last and not 1 <= size <= full:
            raise FrameError("payload length", size, f"1..{full} bytes (last fragment)")
        if i * full >= self.config.max_bundle_bytes + MAX_DESCRIPTOR_BYTES:
            raise FrameError(
                "fragment index", i, f"within max_bundle_bytes={self.config.max_bundle_bytes}"
            )
        if b.layout is not None and g >= len(b.layout.segment_lengths):
            raise FrameError("segment", g, f"0..{len(b.layout.segment_lengths) - 1}")
        n = self._n_fragments(b, g)
        if n is not None and (i >= n or last != (i == n - 1)):
            raise FrameError("fragment index", i, f"0..{n - 1} (LAST on {n - 1})")
        if b.layout is not None and last:
            tail = b.layout.segment_lengths[g] - (n - 1) * full
            if size != tail:
                raise FrameError("payload length", size, f"{tail} bytes (last fragment)")

    # --- memory -----------------------------------------------------------------------------

    def _reserve(self, b: _RxBundle, n: int) -> bool:
        """Room for ``n`` more bytes of ``b``: per bundle within ``max_bundle_bytes`` (plus
        descriptor and parity), and in all within ``receiver_memory_bytes`` (evicting the
        fragments of given-up bundles first). False: drop the frame."""
        cfg = self.config
        per_bundle = cfg.max_bundle_bytes + MAX_DESCRIPTOR_BYTES
        if cfg.fec:
            per_bundle += per_bundle * cfg.fec_m // cfg.fec_k + cfg.mtu_bytes * cfg.fec_m
        if b.mem + n > per_bundle:
            return False
        if self._mem + n > cfg.receiver_memory_bytes:
            for old in list(self._bundles.values()):
                if old.gave_up and old.mem and old is not b:
                    self._free(old)
                    if self._mem + n <= cfg.receiver_memory_bytes:
                        break
            if self._mem + n > cfg.receiver_memory_bytes:
                return False
        b.mem += n
        self._mem += n
        return True

    def _release(self, b: _RxBundle, n: int) -> None:
        b.mem -= n
        self._mem -= n

    def _free(self, b: _RxBundle) -> None:
        """Let go of every fragment and parity row of ``b``."""
        b.fragments.clear()
        b.last.clear()
        b.parity.clear()
        b.group_size.clear()
        self._mem -= b.mem
        b.mem = 0

    def _pop_fragment(self, b: _RxBundle, g: int, i: int) -> None:
        payload = b.fragments.get(g, {}).pop(i, None)
        if payload is not None:
            self._release(b, len(payload))

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
        if not self._reserve(b, len(payload)):
            self._drop(now, "memory", f"bundle {b.bundle_id} fragment {g}/{i}")
            return
        frags[i] = payload
        if flags & Flag.LAST:
            b.last[g] = i
        if b.layout is None:
            if g == 0:
                self._try_descriptor(b, now, events)
            return
        size = self.config.fragment_bytes(b.bundle_id)
        seg_len = b.layout.segment_lengths[g]
        for k in b.layout.members[g]:
            if k not in b.complete and i in b.layout.spans[k].fragments(size, seg_len):
                self._try_section(b, k, now, events)
        if g == b.layout.spans[0].segment:
            self._progress(b, now, events)

    def _progress(self, b: _RxBundle, now: float, events: list[Event]) -> None:
        """Section 0's contiguous leading bytes grew (before it is whole): say so."""
        if not self.progress or b.layout is None or 0 in b.complete:
            return
        data = self.section_prefix(b.bundle_id, 0, b.epoch)
        if len(data) > b.progress:
            b.progress = len(data)
            events.append(
                SectionProgress(bundle_id=b.bundle_id, time_s=now, epoch=b.epoch, data=data)
            )

    def _try_descriptor(self, b: _RxBundle, now: float, events: list[Event]) -> None:
        frags = b.fragments.get(0, {})
        head = bytearray()
        for k in itertools.count():
            if k not in frags or len(head) >= MAX_DESCRIPTOR_BYTES:
                break
            head += frags[k]
        try:
            parsed = Descriptor.parse_prefix(
                bytes(head), self.config.crc_bits, self.config.max_bundle_bytes
            )
        except FrameError as e:
            parsed = None
            if e.field == "descriptor.total_length" or (
                0 in b.last and len(frags) == b.last[0] + 1  # all of segment 0, still bad
            ):
                for i in list(frags):
                    self._pop_fragment(b, 0, i)
                b.last.pop(0, None)
                self.stats.section_crc_failures += 1
                self._drop(now, "malformed", str(e))
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
                    self._pop_fragment(b, g, i)
                    self.stats.dropped_malformed += 1
            if g in b.last and b.last[g] not in b.fragments[g]:
                del b.last[g]
        if b.hwm is not None and b.hwm[0] >= len(b.layout.segment_lengths):
            b.hwm = None
        for k in range(len(d.lengths)):
            self._try_section(b, k, now, events)
        self._progress(b, now, events)

    def _try_section(self, b: _RxBundle, k: int, now: float, events: list[Event]) -> None:
        d, layout = b.descriptor, b.layout
        if d is None or layout is None or k in b.complete:
            return
        size = self.config.fragment_bytes(b.bundle_id)
        span = layout.spans[k]
        frags = b.fragments.get(span.segment, {})
        idx = span.fragments(size, layout.segment_lengths[span.segment])
        if any(f not in frags for f in idx):
            return
        start = span.offset - (idx.start * size if len(idx) else 0)
        data = b"".join(frags[f] for f in idx)[start : start + span.length]
        if len(data) != span.length or section_check(data, self.config.crc_bits) != d.checks[k]:
            for f in idx:  # fetch them again
                self._pop_fragment(b, span.segment, f)
            self.stats.section_crc_failures += 1
            return
        b.complete[k] = data
        while b.prefix < len(d.lengths) and b.prefix in b.complete:
            j = b.prefix
            b.record.section_delivered_s[j] = now
            events.append(
                SectionDelivered(
                    bundle_id=b.bundle_id, time_s=now, epoch=b.epoch, index=j, data=b.complete[j]
                )
            )
            b.prefix += 1
        if b.prefix == len(d.lengths):
            b.done = True
            self._open.pop(b.key, None)
            self._words_open.pop(b.key, None)
            b.record.delivered_s = now
            b.nak_deadline_s = None
            b.nak_pending.clear()
            self._free(b)
            sections = tuple(b.complete[j] for j in range(len(d.lengths)))
            events.append(
                BundleDelivered(
                    bundle_id=b.bundle_id, time_s=now, epoch=b.epoch, sections=sections
                )
            )
            if self.fin_on_delivery:
                b.acked = True
                self._queue_fin(b)
            self._remember_done(b)

    def _remember_done(self, b: _RxBundle) -> None:
        self._done.append(b.key)
        if len(self._done) > KEEP_DONE_BUNDLES:
            old = self._done.popleft()
            if self._bundles.get(old) is not None and self._bundles[old].done:
                del self._bundles[old]

    def acknowledge(self, bundle_id: int, epoch: int) -> None:
        """With ``fin_on_delivery=False``: the driver has stored the delivered bundle; FIN it
        now (and answer its later EOFs with FIN).

        Raises:
            LocalProtocolError: no such bundle delivered (or long forgotten).
        """
        b = self._bundles.get((epoch, bundle_id))
        if b is None or not b.done:
            raise LocalProtocolError(f"bundle {bundle_id} of epoch {epoch}: not delivered")
        if not b.acked:
            b.acked = True
            self._queue_fin(b)

    def restore_delivered(self, bundle_id: int, epoch: int) -> None:
        """After a restart: the driver stored this bundle before; answer its EOFs with FIN
        and drop its re-sent fragments, instead of delivering it a second time."""
        key = (epoch, bundle_id)
        if key in self._bundles and self._bundles[key].done:
            return
        record = ReceiverBundleRecord(bundle_id=bundle_id, first_frame_s=0.0, epoch=epoch)
        b = _RxBundle(bundle_id=bundle_id, epoch=epoch, record=record, done=True, acked=True)
        old = self._bundles.pop(key, None)
        if old is not None:
            self._free(old)
            self._open.pop(key, None)
            self._words_open.pop(key, None)
        self._bundles[key] = b
        self._remember_done(b)

    # --- FEC --------------------------------------------------------------------------------

    def _on_parity(self, b: _RxBundle, frame: Frame, now: float, events: list[Event]) -> None:
        cfg = self.config
        if not cfg.fec:
            raise FrameError("type", "PARITY", "no PARITY frames (FEC is off)")
        # parity index, source frames, then a row as wide as the group's widest source row:
        # its 3-byte prefix and 1 .. fragment_bytes of payload (a shorter one cannot be parity
        # of any group, and recovering with it would read rows shorter than their prefix)
        top = PARITY_PREFIX_BYTES + FEC_ROW_PREFIX_BYTES + cfg.fragment_bytes(b.bundle_id)
        if not PARITY_PREFIX_BYTES + FEC_ROW_PREFIX_BYTES + 1 <= len(frame.payload) <= top:
            raise FrameError(
                "parity payload length", len(frame.payload),
                f"{PARITY_PREFIX_BYTES + FEC_ROW_PREFIX_BYTES + 1}..{top} bytes",
            )  # fmt: skip
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
        if not self._reserve(b, len(frame.payload) - 2):
            self._drop(now, "memory", f"bundle {b.bundle_id} parity {key}", frame)
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
        for row in b.parity.pop(key, {}).values():
            self._release(b, len(row))

    # --- NAK / FIN --------------------------------------------------------------------------

    def _missing(self, b: _RxBundle, behind_hwm: bool) -> list[_Range]:
        """Missing fragments as ranges in sending order; a range whose stop is None runs
        to the end of a segment whose length is not known yet."""
        out: list[_Range] = []
        hwm = b.hwm if behind_hwm else None
        if behind_hwm and b.words_checked:  # segment 0's first pass is over (words_first)
            hwm = max(hwm or (1, 0), (1, 0))
        if behind_hwm and hwm is None:
            return out
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
            present = sorted(b.fragments.get(g, {}))
            n = self._n_fragments(b, g)
            top = n if n is not None else (present[-1] + 1 if present else 0)
            if hwm is not None and g == hwm[0]:
                top = min(top, hwm[1])
            out += [(g, a, z) for a, z in _gaps(present, 0, top)]
            if n is None and (hwm is None or g < hwm[0]):
                out.append((g, top, None))
        return out

    def _words_checkpoint(self, b: _RxBundle, frame: Frame, now: float) -> None:
        """words_first: a first-pass frame of segment 0 opens its bundle's words; one of a
        later segment closes the words of its own bundle and of every bundle of the same epoch
        whose segment-0 frames it follows (the sender's order, module docstring)."""
        if frame.segment == 0:
            if not b.done and not b.words_checked:
                b.words_pn = max(b.words_pn, frame.pn)
                self._words_open[b.key] = None
            return
        closed = [b] if not b.words_checked else []
        for key in list(self._words_open):
            other = self._bundles.get(key)
            if other is None:
                del self._words_open[key]
            elif other is not b and key[0] == frame.epoch and other.words_pn < frame.pn:
                closed.append(other)
        for c in closed:
            self._nak_words(c, now)

    def _packet_gaps(self, frame: Frame) -> None:
        """words_first: at a first-pass picture frame, NAK the sender's packet numbers not
        seen since the last one (a words segment lost whole names no bundle; module
        docstring), unless they can only be the picture's own frames."""
        cfg = self.config
        if (
            cfg.policy != "words_first"
            or cfg.arq == "none"
            or frame.type not in (FrameType.DATA, FrameType.PARITY)
            or frame.flags & Flag.RETX
        ):
            return
        if frame.type is FrameType.DATA:
            place = frame.index
            if cfg.fec:
                place += frame.index // cfg.fec_k * cfg.parity_frames(cfg.fec_k)
        elif not cfg.fec or len(frame.payload) < 2:
            return  # a PARITY frame not checked (its bundle is done): no place to read
        else:  # group g: after g full groups and this group's source frames
            place = frame.index * (cfg.fec_k + cfg.parity_frames(cfg.fec_k))
            place += frame.payload[1] + frame.payload[0]
        here = (frame.epoch, frame.bundle_id, frame.segment, place, frame.pn)
        last, self._last_first = self._last_first, here
        if frame.segment == 0:
            return
        asked_epoch, asked = self._pn_asked
        lo = asked + 1 if asked_epoch == frame.epoch else 0
        if frame.pn < lo:
            return  # reordered: its gaps were NAKed already
        self._pn_asked = (frame.epoch, frame.pn)
        if last is not None and last[:3] == here[:3] and place - last[3] == frame.pn - last[4]:
            return  # nothing but this segment's own frames in between
        for start, stop in self._window.missing(lo, frame.pn):
            r = NakRange(PN_SEGMENT, start, stop - start)
            self._pn_pending.append((frame.epoch, frame.bundle_id, r))

    def _nak_words(self, b: _RxBundle, now: float) -> None:
        """NAK what is missing of segment 0 (its first pass is over), once."""
        b.words_checked = True
        self._words_open.pop(b.key, None)
        if self.config.arq == "none" or b.done or b.gave_up:
            return
        missing = [r for r in self._missing(b, behind_hwm=False) if r[0] == 0]
        b.nak_mark = max(b.nak_mark or (0, 0), (1, 0))  # immediate: these gaps are NAKed
        if not missing:
            return
        b.nak_pending += missing
        self._nak_due[b.key] = None
        if b.nak_deadline_s is None:
            b.nak_deadline_s = now + self.config.nak_timeout_s

    def _nak(self, b: _RxBundle, now: float, behind_hwm: bool, only_new: bool) -> None:
        if self.config.arq == "none" or b.done:
            return
        missing = self._missing(b, behind_hwm)
        mark = b.nak_mark
        if only_new and mark is not None:  # leave out what was NAKed since the last timeout
            clipped: list[_Range] = []
            for g, a, z in missing:
                if g < mark[0]:
                    continue
                if g == mark[0]:
                    a = max(a, mark[1])
                if z is None or a < z:
                    clipped.append((g, a, z))
            missing = clipped
        new_mark = b.hwm if behind_hwm and b.hwm is not None else _ALL
        b.nak_mark = new_mark if mark is None else max(mark, new_mark)
        if not missing:
            return
        b.nak_pending += missing
        self._nak_due[b.key] = None
        b.nak_deadline_s = now + self.config.nak_timeout_s

    def _encode(self, ftype: FrameType, b: _RxBundle, payload: bytes = b"") -> bytes:
        return self._encode_for(ftype, b.epoch, b.bundle_id, payload)

    def _encode_for(self, ftype: FrameType, epoch: int, bundle_id: int, payload: bytes) -> bytes:
        if self._pn > MAX_PACKET_NUMBER:
            raise LocalProtocolError(
                f"receiver epoch {self.epoch}: packet numbers used up; restart with a new epoch"
            )
        frame = Frame(
            type=ftype,
            bundle_id=bundle_id,
            payload=encode_feedback(epoch, payload),
            epoch=self.epoch,
            pn=self._pn,
        )
        self._pn += 1
        return encode_frame(frame, self.config, long=True)

    def _queue_fin(self, b: _RxBundle) -> None:
        if self.config.arq == "none":
            return
        self._send(self._encode(FrameType.FIN, b))
        self.stats.fin_frames += 1

    def _send(self, data: bytes) -> None:
        self._outbox.append(data)
        self.stats.control_bytes += len(data)

    def poll_transmit(self, now: float) -> list[bytes]:
        """NAK and FIN frames for the reverse link (empty with ``arq="none"``).

        Gaps found since the last poll are merged into as few NAK frames as fit the MTU,
        leaving out fragments that arrived in the meantime.
        """
        for key in self._nak_due:
            b = self._bundles.get(key)
            if b is not None and not b.done:
                self._flush_naks(b)
        self._nak_due.clear()
        self._flush_packet_naks()
        out, self._outbox = self._outbox, []
        return out

    def _flush_naks(self, b: _RxBundle) -> None:
        pending = sorted(b.nak_pending, key=lambda r: (r[0], r[1]))
        b.nak_pending.clear()
        merged: list[_Range] = []  # union of the pending ranges
        for g, a, z in pending:
            if merged and merged[-1][0] == g:
                _, pa, pz = merged[-1]
                if pz is None or a <= pz:
                    merged[-1] = (g, pa, None if pz is None or z is None else max(pz, z))
                    continue
            merged.append((g, a, z))
        ranges: list[NakRange] = []
        present: dict[int, list[int]] = {}
        for g, a, z in merged:
            if g not in present:
                present[g] = sorted(b.fragments.get(g, {}))
            for ga, gz in _gaps(present[g], a, z):  # minus what arrived since
                ranges.append(NakRange(g, ga, 0 if gz is None else gz - ga))
        max_payload = self.config.mtu_bytes - self.config.control_overhead_bytes - 4
        for payload in encode_nak(ranges, max_payload):
            self._send(self._encode(FrameType.NAK, b, payload))
            self.stats.nak_frames += 1
            b.record.naks_sent += 1

    def _flush_packet_naks(self) -> None:
        """Packet-number NAKs, each naming the bundle (and its sender's epoch) of the frame
        that showed the gap; a sender of another epoch drops them as stale."""
        max_payload = self.config.mtu_bytes - self.config.control_overhead_bytes - 4
        while self._pn_pending:
            epoch, bundle_id, _ = self._pn_pending[0]
            ranges = []
            while self._pn_pending and self._pn_pending[0][:2] == (epoch, bundle_id):
                ranges.append(self._pn_pending.popleft()[2])
            for payload in encode_nak(ranges, max_payload):
                self._send(self._encode_for(FrameType.NAK, epoch, bundle_id, payload))
                self.stats.nak_frames += 1
                self.stats.packet_nak_frames += 1

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
                self._give_up(b, now, events)
                continue
            b.nak_mark = None
            self._nak(b, now, behind_hwm=not b.eof_seen, only_new=False)
        return events

    # --- queries ----------------------------------------------------------------------------

    def _lookup(self, bundle_id: int, epoch: int | None) -> _RxBundle | None:
        if epoch is None:
            rec = self.records.get(bundle_id)
            if rec is None:
                return None
            epoch = rec.epoch
        return self._bundles.get((epoch, bundle_id))

    def delivered_sections(self, bundle_id: int, epoch: int | None = None) -> list[bytes]:
        """The in-order prefix of verified sections of a bundle (empty if unknown);
        ``epoch`` None: the latest sender epoch that used this id."""
        b = self._lookup(bundle_id, epoch)
        if b is None:
            return []
        return [b.complete[k] for k in range(b.prefix)]

    def section_prefix(self, bundle_id: int, index: int, epoch: int | None = None) -> bytes:
        """The leading bytes of section ``index`` held so far: the section once verified,
        else its bytes in the contiguous run of fragments that arrived, each of which passed
        the frame check but not yet the section's (b"" before the descriptor is known).
        For sections coded as a prefix code (the text section), so their first bytes can be
        read before the rest lands."""
        b = self._lookup(bundle_id, epoch)
        if b is None or b.layout is None or not 0 <= index < len(b.layout.spans):
            return b""
        if index in b.complete:
            return b.complete[index]
        size = self.config.fragment_bytes(b.bundle_id)
        span = b.layout.spans[index]
        frags = b.fragments.get(span.segment, {})
        idx = span.fragments(size, b.layout.segment_lengths[span.segment])
        held = bytearray()
        for f in idx:
            if f not in frags:
                break
            held += frags[f]
        start = span.offset - (idx.start * size if len(idx) else 0)
        return bytes(held[start : start + span.length])

    def is_complete(self, bundle_id: int, epoch: int | None = None) -> bool:
        b = self._lookup(bundle_id, epoch)
        return b is not None and b.done

    @property
    def memory_bytes(self) -> int:
        """Fragment and parity bytes held for bundles under reassembly."""
        return self._mem
