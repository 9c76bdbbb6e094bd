"""The sending side: fragmentation, priority scheduling, FEC, ARQ (sans-IO).

Theory of operation. ``submit`` turns a bundle (a list of sections with priority classes)
into its first-pass frames: the sections in (class, index) order are laid out in segments
(:mod:`~textboost.protocol.layout`: the whole bundle with ``fifo``, one per class with
``priority_interleave``, class 0 and the rest with ``words_first``), segment 0 opening with
the descriptor (length, class and check of every section); each segment is cut to the MTU,
each FEC group followed by its parity frames, then comes EOF (ARQ modes) or, one-way without
FEC, the descriptor's frames again (without it nothing of the bundle can be verified).
``poll_transmit`` hands out frames up to a byte budget from three tiers: re-sent EOFs first,
then retransmissions, then first-pass frames ordered by the policy (``fifo``: bundle by
bundle; ``priority_interleave``: class by class across all queued bundles; ``words_first``:
class 0 of every queued bundle, then the rest bundle by bundle). A NAK queues the listed
fragments for retransmission; a FIN completes the bundle. When a bundle's last frame has
gone out the sender waits ``rto_s`` for news; silence re-sends EOF (the receiver answers an
EOF with NAKs or FIN, so a lost NAK or FIN costs one timeout), and after ``max_retries``
re-sends the bundle fails. With ``words_first`` the sender also remembers which of its
recent packet numbers carried words (segment-0 DATA frames, as many as the replay window is
wide): a NAK of packet numbers (``PN_SEGMENT``; the receiver sends it for a gap that may
hide a words segment lost whole, of a bundle it has never heard of) re-sends those.

The sender never reads a clock: times come in as ``now`` (float seconds) and leave as
:meth:`Sender.next_timer`.

Every frame it hands out is stamped with the sender's epoch (given by the driver, never
repeated under one key) and the next packet number of that epoch, covered by FCS and tag; on
the air DATA and PARITY frames carry only the number's low 16 bits (the compact header,
:mod:`~textboost.protocol.frames`), and until a NAK or FIN has echoed the epoch a long-form
HELLO goes before each bundle's segment 0, before its other segments and every 16 frames
(EOFs are long until then and when re-sent after silence,
so a receiver that lost track is back in step). NAK and FIN frames pass the FCS,
the tag and a replay window over the receiver's ``(epoch, packet number)``, and must echo
this sender's epoch, so feedback recorded before a restart of either end never acknowledges
or re-opens a bundle of this session.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field, replace
from enum import Enum

from textboost.protocol import fec
from textboost.protocol.config import (
    MAX_BUNDLE_ID,
    MAX_EPOCH,
    MAX_FRAGMENTS,
    MAX_PACKET_NUMBER,
    LinkConfig,
)
from textboost.protocol.errors import (
    AuthenticationError,
    CorruptFrameError,
    LocalProtocolError,
    RemoteProtocolError,
    UnsyncedFrameError,
    VersionError,
)
from textboost.protocol.events import BundleAcked, BundleFailed, Event, FrameDropped
from textboost.protocol.frames import (
    MAX_SECTION_BYTES,
    MAX_SECTIONS,
    PN_SEGMENT,
    Descriptor,
    Flag,
    Frame,
    FrameType,
    decode_feedback,
    decode_frame,
    decode_nak,
    encode_frame,
)
from textboost.protocol.layout import Layout
from textboost.protocol.records import SenderBundleRecord, SenderStats
from textboost.protocol.replay import KEYLESS_RECOVER_AFTER, ReplayState, ReplayWindow

KEEP_DROPS = 1024
SYNC_INTERVAL = 1 << 14  # frames without news from the receiver before another HELLO
ONE_WAY_SYNC_INTERVAL = 16  # arq="none": no news ever comes; a HELLO every this many frames

__all__ = ["BundleState", "Sender"]


class BundleState(Enum):
    QUEUED = "queued"  # submitted, nothing sent
    SENDING = "sending"  # first pass under way
    WAITING = "waiting"  # first pass done, waiting for FIN (ARQ modes)
    DONE = "done"  # FIN received, or (arq="none") first pass done
    FAILED = "failed"  # no FIN after max_retries EOF re-sends


_S = BundleState
# (state, event) -> next state; anything else is a bug in this module.
_TRANSITIONS: dict[tuple[BundleState, str], BundleState] = {
    (_S.QUEUED, "sent"): _S.SENDING,
    (_S.SENDING, "sent"): _S.SENDING,
    (_S.WAITING, "sent"): _S.WAITING,
    (_S.SENDING, "first_pass_done"): _S.WAITING,
    (_S.SENDING, "first_pass_done_one_way"): _S.DONE,
    (_S.SENDING, "fin"): _S.DONE,
    (_S.WAITING, "fin"): _S.DONE,
    (_S.WAITING, "retries_exhausted"): _S.FAILED,
}

_TIER_EOF, _TIER_RETX, _TIER_FIRST = 0, 1, 2


@dataclass(slots=True)
class _Unit:
    """One first-pass frame of a bundle, kept so it can be re-sent."""

    kind: str  # "data" | "parity" | "eof" | "repeat" (one-way: descriptor again)
    frame: Frame
    klass: int  # priority class of its segment
    sections: tuple[int, ...] = ()  # sections with bytes in this DATA frame
    payload_bytes: int = 0  # section bytes in it (descriptor bytes are overhead)


@dataclass(slots=True)
class _TxBundle:
    bundle_id: int
    order: int
    state: BundleState
    units: list[_Unit]
    by_fragment: dict[tuple[int, int], int]  # (segment, fragment) -> unit index
    n_fragments: dict[int, int]  # segment -> fragments
    record: SenderBundleRecord
    unsent_first: int = 0
    sent_units: set[int] = field(default_factory=set)
    retx_queued: set[tuple[int, int]] = field(default_factory=set)
    deadline_s: float | None = None
    retries: int = 0
    # parts of the bundle (0: segment 0, the header and words; 1: the rest) a HELLO (or a
    # long-form frame) went before
    hello_parts: set[int] = field(default_factory=set)

    def fire(self, event: str) -> None:
        self.state = _TRANSITIONS[(self.state, event)]


class Sender:
    """Sans-IO sender. See the module docstring for the theory of operation.

    Args:
        config: the link configuration (equal to the receiver's).
        epoch: this end's epoch, stamped on every frame and scoping its bundle ids: never
            the same twice under one key (see :mod:`~textboost.protocol.replay`).
        replay_state: the window over the receiver's frames as persisted from
            :attr:`replay_state` (None: a fresh one; enough, as feedback must echo ``epoch``).

    Attributes:
        stats: byte and frame counters over all bundles (:class:`SenderStats`).
        records: per-bundle records by bundle id (:class:`SenderBundleRecord`).
    """

    def __init__(
        self, config: LinkConfig, epoch: int = 0, replay_state: ReplayState | None = None
    ) -> None:
        if not 0 <= epoch <= MAX_EPOCH:
            raise LocalProtocolError(f"epoch {epoch}: expected 0..{MAX_EPOCH}")
        self.config = config
        self.epoch = epoch
        self._window = ReplayWindow(
            config.replay_window,
            replay_state,
            recover_after=None if config.auth_key is not None else KEYLESS_RECOVER_AFTER,
        )
        self._pn = 0
        # The compact header: the receiver holds this epoch once it echoed it in feedback;
        # until then every bundle is preceded by a HELLO. _sync_pn: the packet number of
        # the last long-form frame or of the last feedback (a HELLO every SYNC_INTERVAL).
        self._confirmed = False
        self._sync_pn = -SYNC_INTERVAL
        self._drops: deque[FrameDropped] = deque(maxlen=KEEP_DROPS)
        self.stats = SenderStats()
        self.records: dict[int, SenderBundleRecord] = {}
        self._bundles: dict[int, _TxBundle] = {}  # bundles in flight only
        self._finished: dict[int, BundleState] = {}  # DONE / FAILED, by id
        self._heap: list[tuple] = []
        # words_first: packet number -> (bundle id, bundle order, unit) of the recent
        # segment-0 DATA frames, oldest first, at most replay_window of them
        self._words_pns: dict[int, tuple[int, int, int]] = {}
        self._counter = itertools.count()
        self._order = itertools.count()

    # --- submitting -------------------------------------------------------------------------

    def submit(
        self,
        bundle_id: int,
        sections: list[bytes],
        now: float,
        classes: list[int] | None = None,
    ) -> None:
        """Queue a bundle.

        Args:
            bundle_id: 0..2^32-1, not already in flight; scoped by this sender's epoch (a
                driver counts up from 0 in each epoch, and never needs to wrap).
            sections: the payloads, in the order the receiver hands them out.
            now: current time, seconds.
            classes: priority class per section, 0 (highest) .. 254; default: the index.
        Raises:
            LocalProtocolError: bad id, too many or too large sections (in all more than
                ``max_bundle_bytes``), bad classes.
        """
        cfg = self.config
        if not 0 <= bundle_id <= MAX_BUNDLE_ID:
            raise LocalProtocolError(f"bundle_id {bundle_id}: expected 0..{MAX_BUNDLE_ID}")
        if bundle_id in self._bundles:
            raise LocalProtocolError(f"bundle_id {bundle_id}: already in flight")
        if not 1 <= len(sections) < MAX_SECTIONS:
            raise LocalProtocolError(
                f"bundle {bundle_id}: {len(sections)} sections, expected 1..{MAX_SECTIONS - 1}"
            )
        classes = (
            list(classes) if classes is not None else [min(i, 254) for i in range(len(sections))]
        )
        if len(classes) != len(sections) or any(not 0 <= c <= 254 for c in classes):
            raise LocalProtocolError(
                f"bundle {bundle_id}: classes {classes}: expected one 0..254 per section"
            )
        sections = [bytes(s) for s in sections]
        for i, sec in enumerate(sections):
            if len(sec) > MAX_SECTION_BYTES:
                raise LocalProtocolError(
                    f"bundle {bundle_id} section {i}: {len(sec)} bytes, at most {MAX_SECTION_BYTES}"
                )
        total = sum(map(len, sections))
        if total > cfg.max_bundle_bytes:
            raise LocalProtocolError(
                f"bundle {bundle_id}: {total} bytes, more than max_bundle_bytes "
                f"{cfg.max_bundle_bytes} (the receiver would drop it)"
            )
        descriptor = Descriptor.of(sections, classes, cfg.crc_bits)
        desc_bytes = descriptor.to_bytes(cfg.crc_bits)
        layout = Layout.of(descriptor, len(desc_bytes), cfg.policy)
        units: list[_Unit] = []
        n_fragments: dict[int, int] = {}
        for seg, members in enumerate(layout.members):
            stream = (desc_bytes if seg == 0 else b"") + b"".join(sections[i] for i in members)
            n_fragments[seg] = cfg.n_fragments(len(stream), bundle_id)
            if n_fragments[seg] > MAX_FRAGMENTS:
                raise LocalProtocolError(
                    f"bundle {bundle_id}: segment {seg} of {len(stream)} bytes needs more than "
                    f"{MAX_FRAGMENTS} fragments of {cfg.fragment_bytes(bundle_id)} bytes"
                )
            units += self._segment_units(bundle_id, seg, stream, layout, len(desc_bytes))
        by_fragment = {
            (u.frame.segment, u.frame.index): k for k, u in enumerate(units) if u.kind == "data"
        }
        last_class = layout.segment_classes[-1]
        if cfg.arq != "none":
            eof = Frame(type=FrameType.EOF, bundle_id=bundle_id, epoch=self.epoch)
            units.append(_Unit("eof", eof, last_class))
        elif not cfg.fec:  # one-way, unprotected: nothing verifies without the descriptor
            for f in range(cfg.n_fragments(len(desc_bytes), bundle_id)):
                first = units[by_fragment[(0, f)]].frame
                units.append(
                    _Unit("repeat", replace(first, flags=first.flags | Flag.RETX), last_class)
                )
        record = SenderBundleRecord(
            bundle_id=bundle_id,
            submitted_s=now,
            section_bytes=tuple(len(s) for s in sections),
            section_first_sent_s=[None] * len(sections),
            section_retransmissions=[0] * len(sections),
            epoch=self.epoch,
        )
        bundle = _TxBundle(
            bundle_id=bundle_id,
            order=next(self._order),
            state=_S.QUEUED,
            units=units,
            by_fragment=by_fragment,
            n_fragments=n_fragments,
            record=record,
            unsent_first=len(units),
        )
        self._bundles[bundle_id] = bundle
        self._finished.pop(bundle_id, None)
        self.records[bundle_id] = record
        for k in range(len(units)):
            self._push(_TIER_FIRST, bundle, k)

    def _segment_units(
        self, bundle_id: int, seg: int, stream: bytes, layout: Layout, desc_len: int
    ) -> list[_Unit]:
        """First-pass DATA frames of one segment, each FEC group followed by its parity."""
        cfg = self.config
        size = cfg.fragment_bytes(bundle_id)
        n = cfg.n_fragments(len(stream), bundle_id)
        covers: list[list[int]] = [[] for _ in range(n)]
        for i in layout.members[seg]:
            for f in layout.spans[i].fragments(size, len(stream)):
                covers[f].append(i)
        skip = desc_len if seg == 0 else 0  # descriptor bytes are overhead, not payload
        klass = layout.segment_classes[seg]
        data = [
            _Unit(
                "data",
                Frame(
                    type=FrameType.DATA,
                    bundle_id=bundle_id,
                    segment=seg,
                    index=f,
                    flags=Flag.LAST if f == n - 1 else Flag.NONE,
                    payload=stream[f * size : (f + 1) * size],
                    epoch=self.epoch,
                ),
                klass,
                tuple(covers[f]),
                max(0, min(len(stream), (f + 1) * size) - max(f * size, skip)),
            )
            for f in range(n)
        ]
        if not cfg.fec:
            return data
        units: list[_Unit] = []
        for g, start in enumerate(range(0, n, cfg.fec_k)):
            group = data[start : start + cfg.fec_k]
            rows = [fec.row_for(int(u.frame.flags), u.frame.payload) for u in group]
            parity = fec.encode_group(rows, cfg.parity_frames(len(group)))
            units += group
            units += [
                _Unit(
                    "parity",
                    Frame(
                        type=FrameType.PARITY,
                        bundle_id=bundle_id,
                        segment=seg,
                        index=g,
                        payload=bytes([p, len(group)]) + row,
                        epoch=self.epoch,
                    ),
                    klass,
                )
                for p, row in enumerate(parity)
            ]
        return units

    def _push(self, tier: int, bundle: _TxBundle, unit: int) -> None:
        u = bundle.units[unit]
        policy = self.config.policy
        klass = u.klass if policy == "priority_interleave" else (
            min(u.klass, 1) if policy == "words_first" else 0
        )
        key = (tier, klass, bundle.order, unit, next(self._counter))
        heapq.heappush(self._heap, (key, bundle.bundle_id, unit))

    # --- sending ----------------------------------------------------------------------------

    def poll_transmit(self, now: float, budget_bytes: int | None = None) -> list[bytes]:
        """Frames to put on the link now, in order, totalling at most ``budget_bytes``.

        Returns:
            A list of frames (possibly empty). Frames are never split: the first frame that
            does not fit the remaining budget stops the poll.
        """
        out: list[bytes] = []
        used = 0
        while self._heap:
            (tier, _, order, *_), bundle_id, unit = self._heap[0]
            bundle = self._bundles.get(bundle_id)
            if bundle is None or bundle.order != order:  # finished (or id since reused)
                heapq.heappop(self._heap)
                continue
            u = bundle.units[unit]
            if self._pn > MAX_PACKET_NUMBER:
                raise LocalProtocolError(
                    f"sender epoch {self.epoch}: packet numbers used up; restart with a new epoch"
                )
            # Long form: EOFs re-sent after silence (they re-sync a receiver that lost
            # track) and EOFs before the receiver echoed this epoch; DATA and PARITY are
            # always short, preceded by a HELLO when the receiver may not hold the epoch.
            long = u.kind == "eof" and (tier == _TIER_EOF or not self._confirmed)
            part = min(u.frame.segment, 1)
            if not long and self._hello_due(bundle, part):
                hello = encode_frame(
                    Frame(
                        type=FrameType.HELLO,
                        bundle_id=bundle.bundle_id,
                        epoch=self.epoch,
                        pn=self._pn,
                    ),
                    self.config,
                    long=True,
                )
                if budget_bytes is not None and used + len(hello) > budget_bytes:
                    break
                self._sent_long(bundle, part)
                used += len(hello)
                out.append(hello)
                self.stats.frames_sent += 1
                self.stats.header_bytes += len(hello)
                bundle.record.header_bytes += len(hello)
                continue  # the budget and the packet-number limit are checked again
            flags = u.frame.flags | (Flag.RETX if tier != _TIER_FIRST else Flag.NONE)
            frame = replace(u.frame, flags=flags, pn=self._pn)
            data = encode_frame(frame, self.config, long=long)
            if budget_bytes is not None and used + len(data) > budget_bytes:
                break
            if long:
                self._sent_long(bundle, part)
            else:
                if u.kind == "data" and u.frame.segment == 0:
                    self._remember_words(bundle, unit)
                self._pn += 1
            heapq.heappop(self._heap)
            used += len(data)
            out.append(data)
            self._account(bundle, unit, tier, len(data), now)
        return out

    def _hello_due(self, bundle: _TxBundle, part: int) -> bool:
        """Must a HELLO go before this bundle's next short-form frame (of ``part``: 0 for
        segment 0, 1 for the others)? Until the receiver has echoed this epoch (never, one
        way), before each part of a bundle and every ONE_WAY_SYNC_INTERVAL frames: a lost
        HELLO then keeps the words unread only until the first frame of the picture, and at
        most that many frames wait in the receiver's store; after the echo, every
        SYNC_INTERVAL frames."""
        if not self._confirmed:
            if part not in bundle.hello_parts:
                return True
            return self._pn - self._sync_pn >= ONE_WAY_SYNC_INTERVAL
        return self._pn - self._sync_pn >= SYNC_INTERVAL

    def _remember_words(self, bundle: _TxBundle, unit: int) -> None:
        cfg = self.config
        if cfg.policy != "words_first" or cfg.arq == "none":
            return
        self._words_pns[self._pn] = (bundle.bundle_id, bundle.order, unit)
        if len(self._words_pns) > cfg.replay_window:
            del self._words_pns[next(iter(self._words_pns))]

    def _sent_long(self, bundle: _TxBundle, part: int) -> None:
        bundle.hello_parts.add(part)
        self._sync_pn = self._pn
        self._pn += 1

    def _account(self, bundle: _TxBundle, unit: int, tier: int, n: int, now: float) -> None:
        u = bundle.units[unit]
        st, rec = self.stats, bundle.record
        st.frames_sent += 1
        if rec.first_sent_s is None:
            rec.first_sent_s = now
        bundle.fire("sent")
        if tier == _TIER_FIRST:
            if u.kind == "data":
                p = u.payload_bytes
                st.payload_bytes += p
                rec.payload_bytes += p
                st.header_bytes += n - p
                rec.header_bytes += n - p
                for i in u.sections:
                    if rec.section_first_sent_s[i] is None:
                        rec.section_first_sent_s[i] = now
            elif u.kind == "parity":
                st.fec_bytes += n
                rec.fec_bytes += n
            else:
                st.header_bytes += n
                rec.header_bytes += n
            bundle.unsent_first -= 1
            if bundle.unsent_first == 0:
                rec.first_pass_done_s = now
                if self.config.arq == "none":
                    self._finish(bundle, "first_pass_done_one_way")
                    return
                bundle.fire("first_pass_done")
        else:
            st.retransmission_bytes += n
            rec.retransmission_bytes += n
            st.retransmitted_frames += 1
            if tier == _TIER_RETX:
                bundle.retx_queued.discard((u.frame.segment, u.frame.index))
                for i in u.sections:
                    rec.section_retransmissions[i] += 1
        bundle.sent_units.add(unit)
        if bundle.state is _S.WAITING and not bundle.retx_queued:
            bundle.deadline_s = now + self.config.rto_s

    # --- feedback ---------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[Event]:
        """Feed one frame from the reverse link (NAK or FIN).

        Returns:
            Events: :class:`BundleAcked` when a FIN completes a bundle.
        Raises:
            Nothing for bad bytes: corrupt, forged, replayed, stale (another session's) or
            malformed frames are counted in ``stats``, described in :meth:`take_drops` and
            dropped.
        """
        try:
            frame = decode_frame(data, self.config, self._window.state)
        except CorruptFrameError as e:
            return self._drop(now, "corrupt", str(e))
        except AuthenticationError as e:
            return self._drop(now, "auth", str(e))
        except VersionError as e:
            return self._drop(now, "version", str(e))
        except UnsyncedFrameError as e:
            return self._drop(now, "stale", str(e))
        except RemoteProtocolError as e:
            return self._drop(now, "malformed", str(e))
        verdict = self._window.check(frame.epoch, frame.pn)
        if verdict == "stale_epoch" and self._window.recover(frame.epoch, frame.pn):
            verdict = "new_epoch"  # keyless: the real receiver, after a forged newer epoch
        if verdict in ("replay", "too_old", "stale_epoch"):
            reason = "replay" if verdict == "replay" else "stale"
            detail = f"{verdict}: epoch {frame.epoch} packet {frame.pn}"
            return self._drop(now, reason, detail, frame)
        self._window.accept(frame.epoch, frame.pn)
        try:
            return self._on_frame(frame, now)
        except RemoteProtocolError as e:
            return self._drop(now, "malformed", str(e), frame)

    def _drop(
        self, now: float, reason: str, detail: str, frame: Frame | None = None
    ) -> list[Event]:
        setattr(self.stats, f"dropped_{reason}", getattr(self.stats, f"dropped_{reason}") + 1)
        self._drops.append(FrameDropped.of(now, reason, detail, frame))
        return []

    def take_drops(self) -> list[FrameDropped]:
        """Dropped-frame records since the last call (at most the last 1024), for logging."""
        out = list(self._drops)
        self._drops.clear()
        return out

    @property
    def replay_state(self) -> ReplayState:
        """The window over the receiver's frames."""
        return self._window.state

    def _on_frame(self, frame: Frame, now: float) -> list[Event]:
        if frame.type not in (FrameType.NAK, FrameType.FIN):
            raise RemoteProtocolError(f"sender got a {frame.type.name} frame")
        bundle_epoch, body = decode_feedback(frame.payload)
        if bundle_epoch != self.epoch:
            return self._drop(
                now,
                "stale",
                f"{frame.type.name} about bundle {frame.bundle_id} of epoch {bundle_epoch}, "
                f"this sender is epoch {self.epoch}",
                frame,
            )
        if frame.type is FrameType.FIN and body:
            raise RemoteProtocolError(f"FIN with {len(body)} bytes after the epoch")
        self.stats.frames_received += 1
        self._confirmed = True  # authentic feedback about this epoch: the receiver holds it
        self._sync_pn = self._pn
        ranges = decode_nak(body) if frame.type is FrameType.NAK else []
        for r in ranges:
            if r.segment == PN_SEGMENT:
                self._resend_words(r.start, r.start + r.count)
        bundle = self._bundles.get(frame.bundle_id)
        if bundle is None or bundle.state is _S.QUEUED:
            return []  # late feedback about a finished bundle, or a confused peer
        if frame.type is FrameType.FIN:
            self._finish(bundle, "fin")
            bundle.deadline_s = None
            bundle.record.acked_s = now
            return [BundleAcked(bundle_id=bundle.bundle_id, time_s=now)]
        queued = False
        for r in ranges:
            if r.segment == PN_SEGMENT:
                continue
            n = bundle.n_fragments.get(r.segment)
            if n is None:
                raise RemoteProtocolError(
                    f"NAK for segment {r.segment} of bundle {frame.bundle_id}"
                )
            stop = n if r.count == 0 else min(n, r.start + r.count)
            for i in range(r.start, stop):
                queued |= self._queue_retx(bundle, bundle.by_fragment[(r.segment, i)])
        if queued:
            bundle.deadline_s = None  # re-armed when the last retransmission has gone out
        return []

    def _queue_retx(self, bundle: _TxBundle, k: int) -> bool:
        """Queue unit ``k`` (a DATA frame) for re-sending; False if it is already queued or
        its first transmission is still to come."""
        f = bundle.units[k].frame
        if (f.segment, f.index) in bundle.retx_queued or k not in bundle.sent_units:
            return False
        bundle.retx_queued.add((f.segment, f.index))
        self._push(_TIER_RETX, bundle, k)
        return True

    def _resend_words(self, start: int, stop: int) -> None:
        """Re-send the words frames among packet numbers ``start .. stop-1`` (a NAK of
        packet numbers); numbers that carried anything else, or are forgotten, are ignored."""
        if stop - start <= len(self._words_pns):
            pns = [p for p in range(start, stop) if p in self._words_pns]
        else:
            pns = [p for p in self._words_pns if start <= p < stop]
        for p in pns:
            bundle_id, order, k = self._words_pns.pop(p)
            bundle = self._bundles.get(bundle_id)
            if bundle is not None and bundle.order == order and self._queue_retx(bundle, k):
                bundle.deadline_s = None

    def _finish(self, bundle: _TxBundle, event: str) -> None:
        bundle.fire(event)
        bundle.deadline_s = None
        del self._bundles[bundle.bundle_id]
        self._finished[bundle.bundle_id] = bundle.state

    # --- timers -----------------------------------------------------------------------------

    def next_timer(self) -> float | None:
        """The earliest time :meth:`handle_timeout` has work, or None."""
        deadlines = [b.deadline_s for b in self._bundles.values() if b.deadline_s is not None]
        return min(deadlines, default=None)

    def handle_timeout(self, now: float) -> list[Event]:
        """Re-send EOF for bundles whose timer expired; fail those out of retries.

        Returns:
            :class:`BundleFailed` events.
        """
        events: list[Event] = []
        for bundle in list(self._bundles.values()):
            if bundle.deadline_s is None or bundle.deadline_s > now:
                continue
            bundle.deadline_s = None
            bundle.retries += 1
            if bundle.retries > self.config.max_retries:
                self._finish(bundle, "retries_exhausted")
                bundle.record.failed_s = now
                events.append(
                    BundleFailed(
                        bundle_id=bundle.bundle_id,
                        time_s=now,
                        reason=f"no FIN after {self.config.max_retries} EOF re-sends",
                    )
                )
                continue
            bundle.record.eof_resends += 1
            self._push(_TIER_EOF, bundle, len(bundle.units) - 1)
        return events

    # --- queries ----------------------------------------------------------------------------

    def state(self, bundle_id: int) -> BundleState:
        """Raises: LocalProtocolError for an unknown bundle id."""
        if bundle_id in self._bundles:
            return self._bundles[bundle_id].state
        if bundle_id in self._finished:
            return self._finished[bundle_id]
        raise LocalProtocolError(f"bundle_id {bundle_id}: never submitted")

    @property
    def has_frames(self) -> bool:
        """True while a poll would return at least one frame (given enough budget)."""
        while self._heap:
            (_, _, order, *_), bundle_id, _ = self._heap[0]
            bundle = self._bundles.get(bundle_id)
            if bundle is not None and bundle.order == order:
                return True
            heapq.heappop(self._heap)
        return False

    @property
    def active_bundles(self) -> list[int]:
        """Ids of bundles not yet DONE or FAILED, in submit order."""
        return [b.bundle_id for b in sorted(self._bundles.values(), key=lambda b: b.order)]
