"""Sender and Receiver end to end over an in-memory wire: loss, reordering, duplication,
corruption, NAK modes, FEC without ARQ, priorities, timers and byte accounting."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textboost.protocol import (
    BundleAcked,
    BundleDelivered,
    BundleFailed,
    BundleState,
    Event,
    FrameType,
    LinkConfig,
    Receiver,
    ReceiverGaveUp,
    SectionDelivered,
    Sender,
    decode_frame,
)
from textboost.protocol.frames import (
    PN_SEGMENT,
    Descriptor,
    Flag,
    decode_feedback,
    decode_nak,
)
from textboost.protocol.layout import Layout
from textboost.protocol.replay import ReplayState

pytestmark = pytest.mark.edge

PEER = ReplayState(epoch=0, top=0)  # what a receiver holds after the sender's HELLO (epoch 0)


@dataclass
class Wire:
    """A lossy wire: a plain list of frames per direction, faults from a seeded Generator."""

    rng: np.random.Generator
    loss: float = 0.0
    reverse_loss: float = 0.0
    corrupt: float = 0.0
    duplicate: float = 0.0
    reorder: bool = False
    drop_index: set[int] = field(default_factory=set)  # forward frames to drop by number
    sent: list[bytes] = field(default_factory=list)  # every forward frame, as sent
    held: list[bytes] = field(default_factory=list)

    def forward(self, frames: list[bytes]) -> list[bytes]:
        out = []
        for f in frames:
            n = len(self.sent)
            self.sent.append(f)
            if n in self.drop_index or self.rng.random() < self.loss:
                continue
            if self.rng.random() < self.corrupt:
                bad = bytearray(f)
                bad[int(self.rng.integers(len(f)))] ^= 1 << int(self.rng.integers(8))
                f = bytes(bad)
            out.append(f)
            if self.rng.random() < self.duplicate:
                out.append(f)
        if self.reorder:  # shuffle, and hold some frames back to a later step
            out += self.held
            self.held = []
            self.rng.shuffle(out)
            keep = self.rng.random(len(out)) < 0.8
            self.held = [f for f, k in zip(out, keep, strict=True) if not k]
            out = [f for f, k in zip(out, keep, strict=True) if k]
        return out

    def backward(self, frames: list[bytes]) -> list[bytes]:
        return [f for f in frames if self.rng.random() >= self.reverse_loss]


def run(
    sender: Sender,
    receiver: Receiver,
    wire: Wire,
    *,
    budget_bytes: int = 1024,
    step_s: float = 1.0,
    max_steps: int = 3000,
) -> tuple[list[Event], list[Event]]:
    """Drive both ends until the sender has nothing in flight. Returns (rx, tx) events."""
    rx: list[Event] = []
    tx: list[Event] = []
    t = 0.0
    for _ in range(max_steps):
        for f in wire.forward(sender.poll_transmit(t, budget_bytes)):
            rx += receiver.receive(f, t)
        for f in wire.backward(receiver.poll_transmit(t)):
            tx += sender.receive(f, t)
        t += step_s
        for end, events in ((sender, tx), (receiver, rx)):
            timer = end.next_timer()
            if timer is not None and timer <= t:
                events += end.handle_timeout(t)
        if not sender.active_bundles and not wire.held:
            break
    else:
        raise AssertionError("transfer did not finish")
    return rx, tx


def bundles(rng: np.random.Generator, n: int) -> dict[int, list[bytes]]:
    return {
        b: [rng.bytes(int(k)) for k in rng.integers(0, 900, size=int(rng.integers(1, 7)))]
        for b in range(n)
    }


def delivered(events: list[Event]) -> dict[int, tuple[bytes, ...]]:
    return {e.bundle_id: e.sections for e in events if isinstance(e, BundleDelivered)}


@pytest.mark.parametrize("arq", ["immediate", "deferred"])
@pytest.mark.parametrize("policy", ["fifo", "priority_interleave", "words_first"])
@pytest.mark.parametrize("seed", [1, 2])
def test_every_bundle_delivered_byte_exact_under_loss(arq, policy, seed):
    rng = np.random.default_rng(seed)
    cfg = LinkConfig(
        mtu_bytes=128, arq=arq, policy=policy, rto_s=3.0, nak_timeout_s=3.0, max_retries=30
    )
    s, r = Sender(cfg), Receiver(cfg)
    data = bundles(rng, 5)
    for b, sections in data.items():
        s.submit(b, sections, 0.0)
    rx, tx = run(s, r, Wire(rng, loss=0.25, reverse_loss=0.25))
    assert delivered(rx) == {b: tuple(v) for b, v in data.items()}
    assert {e.bundle_id for e in tx if isinstance(e, BundleAcked)} == set(data)
    assert s.stats.retransmitted_frames > 0
    assert sum(sum(rec.section_retransmissions) for rec in s.records.values()) > 0


def test_reordered_duplicated_and_corrupted_frames():
    rng = np.random.default_rng(7)
    cfg = LinkConfig(mtu_bytes=96, arq="immediate", rto_s=4.0, nak_timeout_s=4.0, max_retries=30)
    s, r = Sender(cfg), Receiver(cfg)
    data = bundles(rng, 4)
    for b, sections in data.items():
        s.submit(b, sections, 0.0)
    wire = Wire(rng, loss=0.1, corrupt=0.1, duplicate=0.3, reorder=True, reverse_loss=0.1)
    rx, _ = run(s, r, wire)
    assert delivered(rx) == {b: tuple(v) for b, v in data.items()}
    assert r.stats.dropped_corrupt > 0 and r.stats.duplicates > 0
    # Sections are handed out once each, as an in-order prefix per bundle.
    for b, sections in data.items():
        got = [e.index for e in rx if isinstance(e, SectionDelivered) and e.bundle_id == b]
        assert got == list(range(len(sections)))


@pytest.mark.parametrize(("mtu", "crc_bits"), [(51, 16), (340, 32)])
def test_small_message_links(mtu, crc_bits):
    """LoRa (51-byte payloads) and Iridium SBD (340-byte messages): every frame fits."""
    rng = np.random.default_rng(3)
    cfg = LinkConfig(mtu_bytes=mtu, crc_bits=crc_bits, rto_s=3.0, max_retries=30)
    s, r = Sender(cfg), Receiver(cfg)
    data = bundles(rng, 2)
    for b, sections in data.items():
        s.submit(b, sections, 0.0)
    wire = Wire(rng, loss=0.15, reverse_loss=0.15)
    rx, _ = run(s, r, wire, budget_bytes=4 * mtu)
    assert delivered(rx) == {b: tuple(v) for b, v in data.items()}
    assert max(len(f) for f in wire.sent) <= mtu
    assert all(len(f) <= mtu for f in r.poll_transmit(0.0))


@pytest.mark.parametrize("arq", ["immediate", "deferred"])
@pytest.mark.parametrize("loser", [0, 1])
@pytest.mark.parametrize("nak_lost", [False, True])
def test_words_first_resends_a_lost_last_word_frame_before_the_pictures(arq, loser, nak_lost):
    """words_first: the last frame of a photo's words is lost. The first frame of a picture
    closes every queued photo's words, so the frame is NAKed and re-sent then, one picture
    frame later, not after the photo's picture and EOF; if that NAK is lost too, the re-NAK
    after ``nak_timeout_s`` asks for it again."""
    cfg = LinkConfig(mtu_bytes=64, arq=arq, policy="words_first", nak_timeout_s=5.0)
    rng = np.random.default_rng(4)
    data = {b: [rng.bytes(150), rng.bytes(300), rng.bytes(1200)] for b in (0, 1)}
    s, r = Sender(cfg), Receiver(cfg)
    for b, sections in data.items():
        s.submit(b, sections, 0.0)
    lost = False
    pictures_before = None  # picture frames on the air when the loser's words were whole
    sent_pictures = 0
    naks_dropped = False
    rx: list[Event] = []
    t = 0.0
    while s.active_bundles and t < 1000:
        for f in s.poll_transmit(t, cfg.mtu_bytes):  # one frame at a time
            k = decode_frame(f, cfg, PEER)
            if k.type is FrameType.DATA and k.segment > 0 and not k.flags & Flag.RETX:
                sent_pictures += 1
            last_words = k.type is FrameType.DATA and k.segment == 0 and k.flags & Flag.LAST
            if last_words and k.bundle_id == loser and not lost:
                lost = True
                continue
            for e in r.receive(f, t):
                rx.append(e)
                if isinstance(e, SectionDelivered) and (e.bundle_id, e.index) == (loser, 0):
                    pictures_before = sent_pictures
        feedback = r.poll_transmit(t)
        naks = [f for f in feedback if decode_frame(f, cfg).type is FrameType.NAK]
        if nak_lost and naks and not naks_dropped:  # the first NAKs (fragments, packets)
            naks_dropped = True
            feedback = [f for f in feedback if f not in naks]
        for f in feedback:
            s.receive(f, t)
        t += 1.0
        for end, events in ((s, []), (r, rx)):
            if end.next_timer() is not None and end.next_timer() <= t:
                events += end.handle_timeout(t)
    assert lost and delivered(rx) == {b: tuple(v) for b, v in data.items()}
    # of 2 x 27 picture frames: re-sent after the first one, or one NAK timeout later
    assert pictures_before == (1 + 5 if nak_lost else 1)
    assert s.records[loser].section_retransmissions[0] == 1


def _words_lost_whole(cfg: LinkConfig, loser: int, losses: list[bool] | None = None):
    """Three photos, words_first, one frame a step: every frame of photo ``loser`` before
    the first picture frame (its HELLO, words and parity) is lost, and (``losses``) the
    n-th forward frame if entry n is True. Returns the receiver's events, picture frames
    on the air when the loser's words were whole, each packet-number NAK range with the
    highest packet number sent before it, and the sender."""
    rng = np.random.default_rng(5)
    data = {b: [rng.bytes(150), rng.bytes(300), rng.bytes(1200)] for b in (0, 1, 2)}
    s, r = Sender(cfg), Receiver(cfg)
    for b, sections in data.items():
        s.submit(b, sections, 0.0)
    pictures, pictures_before, top_pn, n = 0, None, -1, 0
    asked: list[tuple[int, int, int]] = []  # (first, count, highest pn sent by then)
    rx: list[Event] = []
    t = 0.0
    while s.active_bundles and t < 2000:
        for f in s.poll_transmit(t, cfg.mtu_bytes):
            k = decode_frame(f, cfg, ReplayState(epoch=0, top=max(top_pn, 0)))
            top_pn = max(top_pn, k.pn)
            n += 1
            lose = losses is not None and n <= len(losses) and losses[n - 1]
            if k.type in (FrameType.DATA, FrameType.PARITY) and k.segment > 0:
                pictures += not k.flags & Flag.RETX
            if (k.bundle_id == loser and pictures == 0) or lose:
                continue
            for e in r.receive(f, t):
                rx.append(e)
                if isinstance(e, SectionDelivered) and (e.bundle_id, e.index) == (loser, 0):
                    pictures_before = pictures
        for f in r.poll_transmit(t):
            k = decode_frame(f, cfg)
            if k.type is FrameType.NAK:
                for g in decode_nak(decode_feedback(k.payload)[1]):
                    if g.segment == PN_SEGMENT:
                        asked.append((g.start, g.count, top_pn))
            s.receive(f, t)
        t += 1.0
        for end, events in ((s, []), (r, rx)):
            if end.next_timer() is not None and end.next_timer() <= t:
                events += end.handle_timeout(t)
    assert delivered(rx) == {b: tuple(v) for b, v in data.items()}
    return rx, pictures_before, asked, s


@pytest.mark.parametrize("arq", ["immediate", "deferred"])
@pytest.mark.parametrize("fec", [None, (4, 1)])
@pytest.mark.parametrize("loser", [0, 1, 2])
def test_words_first_resends_a_words_segment_lost_whole(arq, fec, loser):
    """words_first: every frame of a photo's words segment is lost, so the ground knows
    nothing of the photo. The first picture frame shows a gap in the sender's packet
    numbers; the receiver NAKs those numbers and the sender re-sends the words among them,
    one picture frame later, not at the photo's own picture (27 frames per photo)."""
    fec_kw = {"fec_k": fec[0], "fec_m": fec[1]} if fec else {}
    cfg = LinkConfig(mtu_bytes=64, arq=arq, policy="words_first", nak_timeout_s=5.0, **fec_kw)
    _, pictures_before, asked, s = _words_lost_whole(cfg, loser)
    assert pictures_before == 1
    assert asked and s.records[loser].section_retransmissions[0] >= 1


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.booleans(), min_size=1, max_size=60),
    st.sampled_from(["immediate", "deferred"]),
    st.booleans(),
    st.integers(0, 2),
)
def test_receiver_never_naks_a_packet_number_not_yet_sent(losses, arq, fec, loser):
    """Whatever frames are lost, a packet-number NAK names only numbers the sender has
    already used (below the highest one sent), and the photos still arrive whole."""
    fec_kw = {"fec_k": 4, "fec_m": 1} if fec else {}
    cfg = LinkConfig(
        mtu_bytes=64, arq=arq, policy="words_first", nak_timeout_s=5.0, max_retries=50, **fec_kw
    )
    _, _, asked, _ = _words_lost_whole(cfg, loser, losses)
    assert asked and all(count >= 1 and first + count - 1 < top for first, count, top in asked)


@settings(max_examples=40, deadline=None)
@given(
    arq=st.sampled_from(["immediate", "deferred"]),
    fec=st.booleans(),
    sizes=st.lists(
        st.tuples(st.integers(0, 160), st.integers(1, 400), st.integers(0, 400)),
        min_size=2, max_size=5,
    ),
    gaps=st.lists(st.integers(0, 30), min_size=5, max_size=5),
    seed=st.integers(0, 2**16),
)  # fmt: skip
def test_words_first_naks_only_word_frames_already_sent(arq, fec, sizes, gaps, seed):
    """The receiver's inference "this photo's words segment is over" is sound: photos
    submitted while others are on the air, random losses both ways, FEC or not, budget of
    one frame a step; every segment-0 fragment any NAK names has gone out before."""
    fec_km = {"fec_k": 3, "fec_m": 1} if fec else {}
    cfg = LinkConfig(mtu_bytes=64, arq=arq, policy="words_first", rto_s=4.0,
                     nak_timeout_s=4.0, max_retries=40, **fec_km)  # fmt: skip
    rng = np.random.default_rng(seed)
    data = {b: [rng.bytes(n) for n in three] for b, three in enumerate(sizes)}
    due = dict(zip(data, np.cumsum(gaps[: len(data)]), strict=True))  # submit times
    words = {  # fragments of each photo's segment 0: descriptor and section 0
        b: cfg.n_fragments(len(Descriptor.of(v, [0, 1, 2], 32).to_bytes(32)) + len(v[0]), b)
        for b, v in data.items()
    }
    s, r = Sender(cfg), Receiver(cfg)
    sent: set[tuple[int, int, int]] = set()  # (bundle, segment, fragment) first-pass DATA
    rx: list[Event] = []
    t = 0.0
    while (due or s.active_bundles) and t < 3000:
        for b in [b for b, at in due.items() if at <= t]:
            s.submit(b, data[b], t)
            del due[b]
        for f in s.poll_transmit(t, cfg.mtu_bytes):
            k = decode_frame(f, cfg, PEER)
            if k.type is FrameType.DATA:
                sent.add((k.bundle_id, k.segment, k.index))
            if rng.random() >= 0.2:
                rx += r.receive(f, t)
        for f in r.poll_transmit(t):
            k = decode_frame(f, cfg)
            if k.type is FrameType.NAK:
                for g in decode_nak(decode_feedback(k.payload)[1]):
                    if g.segment != 0:
                        continue
                    stop = g.start + g.count if g.count else words[k.bundle_id]
                    assert all((k.bundle_id, 0, i) in sent for i in range(g.start, stop)), g
            if rng.random() >= 0.2:
                s.receive(f, t)
        t += 1.0
        for end, events in ((s, []), (r, rx)):
            if end.next_timer() is not None and end.next_timer() <= t:
                events += end.handle_timeout(t)
    assert delivered(rx) == {b: tuple(v) for b, v in data.items()}


def first_nak_and_eof(cfg: LinkConfig) -> tuple[int, int, int]:
    """Lose forward frame 2 of a 12-frame bundle. Returns (frames the receiver had taken in
    when it first NAKed, frames it had taken in when EOF arrived, NAK frames in all)."""
    s, r = Sender(cfg), Receiver(cfg)
    s.submit(0, [bytes(range(256)) * 4], 0.0)
    frames = s.poll_transmit(0.0)
    first_nak = eof_at = None
    for n, f in enumerate(frames):
        if n == 2:
            continue
        r.receive(f, 0.0)
        if decode_frame(f, cfg, PEER).type is FrameType.EOF:
            eof_at = n
        back = r.poll_transmit(0.0)
        if back and first_nak is None:
            first_nak = n
        for b in back:
            s.receive(b, 0.0)
    for f in s.poll_transmit(1.0):
        r.receive(f, 1.0)
    assert r.is_complete(0)
    return first_nak, eof_at, r.stats.nak_frames


def test_immediate_naks_at_the_gap_deferred_at_eof():
    base = {"mtu_bytes": 128}
    nak_i, _, count_i = first_nak_and_eof(LinkConfig(arq="immediate", **base))
    nak_d, eof_d, count_d = first_nak_and_eof(LinkConfig(arq="deferred", **base))
    assert nak_i == 3  # the first frame after the hole
    assert nak_d == eof_d > nak_i
    assert count_i >= 1 and count_d == 1


def test_fec_repairs_bounded_losses_without_arq():
    """Losses chosen from the frames actually sent (any policy's layout): ``fec_m`` in a full
    FEC group and a corrupt frame in another are repaired; one more in that group loses only
    the sections with bytes in it, and the sections before them are still delivered."""
    cfg = LinkConfig(mtu_bytes=128, arq="none", fec_k=8, fec_m=2)
    rng = np.random.default_rng(11)
    sections = [rng.bytes(40), rng.bytes(120), rng.bytes(2000)]
    s = Sender(cfg)
    s.submit(0, sections, 0.0)
    frames = s.poll_transmit(0.0)
    assert s.state(0) is BundleState.DONE  # one-way: done once everything is out
    groups: dict[tuple[int, int], list[int]] = {}  # (segment, FEC group) -> frame positions
    for pos, f in enumerate(frames):
        k = decode_frame(f, cfg, PEER)
        if k.type is FrameType.DATA and not k.flags & Flag.RETX:
            groups.setdefault((k.segment, k.index // cfg.fec_k), []).append(pos)
    full = [g for g, members in groups.items() if len(members) == cfg.fec_k]
    seg, group = target = max(full)  # the last full group: fec_m losses are the most it repairs
    other = max(g for g in groups if g != target)
    # the sections with bytes in the target group, from the layout both ends compute
    desc = Descriptor.of(sections, list(range(len(sections))), cfg.crc_bits)
    layout = Layout.of(desc, len(desc.to_bytes(cfg.crc_bits)), cfg.policy)
    size, in_group = cfg.fragment_bytes(0), set(range(group * cfg.fec_k, (group + 1) * cfg.fec_k))
    hit = {
        i
        for i, span in enumerate(layout.spans)
        if span.segment == seg
        and in_group & set(span.fragments(size, layout.segment_lengths[seg]))
    }
    assert hit == {2}  # the test's point: a group of the y section alone

    # fec_m losses in that group, and a corrupt frame in another: all repaired.
    r = Receiver(cfg)
    lost = set(groups[target][1 : 1 + cfg.fec_m])
    corrupt = groups[other][-1]
    events = []
    for i, f in enumerate(frames):
        if i in lost:
            continue
        if i == corrupt:
            f = f[:-1] + bytes([f[-1] ^ 0xFF])
        events += r.receive(f, 0.0)
    assert delivered(events) == {0: tuple(sections)}
    assert r.stats.fec_recovered == cfg.fec_m + 1 and r.stats.dropped_corrupt == 1
    assert r.poll_transmit(0.0) == []  # one-way: nothing on the reverse link

    # fec_m + 1 losses in that group: its section cannot be rebuilt, earlier ones still are.
    r = Receiver(cfg)
    lost = set(groups[target][: cfg.fec_m + 1])
    events = [e for i, f in enumerate(frames) if i not in lost for e in r.receive(f, 0)]
    assert delivered(events) == {}
    assert [e.index for e in events if isinstance(e, SectionDelivered)] == [0, 1]
    assert r.delivered_sections(0) == sections[:2]


def test_fec_random_loss_one_way():
    rng = np.random.default_rng(5)
    cfg = LinkConfig(mtu_bytes=200, arq="none", fec_k=10, fec_m=4)
    s, r = Sender(cfg), Receiver(cfg)
    data = bundles(rng, 6)
    for b, sections in data.items():
        s.submit(b, sections, 0.0)
    rx, _ = run(s, r, Wire(rng, loss=0.08))
    assert delivered(rx) == {b: tuple(v) for b, v in data.items()}
    assert r.stats.fec_recovered > 0
    assert s.stats.fec_bytes > 0


@pytest.mark.parametrize(
    "sizes",
    [(60, 500, 700, 1200, 1700), (40, 120, 400, 380, 300, 200, 60)],  # ≈ 4 kB, 1.5 kB images
)
def test_efficiency_on_a_clean_link_is_counted_from_real_bytes(sizes):
    rng = np.random.default_rng(0)
    cfg = LinkConfig(mtu_bytes=256)
    s, r = Sender(cfg), Receiver(cfg)
    sections = [rng.bytes(n) for n in sizes]
    s.submit(0, sections, 0.0)
    wire = Wire(rng)
    rx, _ = run(s, r, wire)
    assert delivered(rx) == {0: tuple(sections)}
    on_air = sum(len(f) for f in wire.sent)
    assert s.stats.on_air_bytes == on_air == s.records[0].on_air_bytes
    assert s.stats.payload_bytes == sum(map(len, sections))
    assert s.stats.retransmission_bytes == s.stats.fec_bytes == 0
    assert s.stats.efficiency == pytest.approx(s.stats.payload_bytes / on_air)
    assert s.stats.efficiency >= 0.85  # v3 frames: 10-11 bytes of header + CRC each


def test_byte_buckets_add_up_under_loss_and_fec():
    rng = np.random.default_rng(4)
    cfg = LinkConfig(mtu_bytes=128, fec_k=4, fec_m=1, rto_s=3.0, max_retries=30)
    s, r = Sender(cfg), Receiver(cfg)
    for b, sections in bundles(rng, 3).items():
        s.submit(b, sections, 0.0)
    wire = Wire(rng, loss=0.3, reverse_loss=0.2)
    run(s, r, wire)
    st = s.stats
    assert st.on_air_bytes == sum(len(f) for f in wire.sent)
    assert min(st.payload_bytes, st.header_bytes, st.fec_bytes, st.retransmission_bytes) > 0
    assert st.frames_sent == len(wire.sent)


def test_priority_policies_order_first_pass():
    def order(policy: str) -> list[tuple[int, int]]:
        cfg = LinkConfig(mtu_bytes=64, policy=policy)
        s = Sender(cfg)
        for b in range(3):
            s.submit(b, [b"h" * 10, b"z" * 60, b"y" * 100], float(b))
        frames = [decode_frame(f, cfg, PEER) for f in s.poll_transmit(0.0)]
        return [(f.bundle_id, f.segment) for f in frames if f.type is FrameType.DATA]

    fifo = order("fifo")
    assert [b for b, _ in fifo] == sorted(b for b, _ in fifo)  # bundle after bundle
    assert {g for _, g in fifo} == {0}  # one segment per bundle: sections share frames
    inter = order("priority_interleave")
    assert [g for _, g in inter] == sorted(g for _, g in inter)  # class after class
    assert inter[:3] == [(0, 0), (1, 0), (2, 0)]  # every bundle's header goes first


def test_budget_is_respected_and_sections_timestamped():
    cfg = LinkConfig(mtu_bytes=100)
    s = Sender(cfg)
    s.submit(9, [b"a" * 50, b"b" * 500], 2.0)
    t, sent = 2.0, []
    while s.has_frames:
        frames = s.poll_transmit(t, budget_bytes=250)
        assert sum(map(len, frames)) <= 250 and frames
        sent += frames
        t += 1.0
    rec = s.records[9]
    assert rec.first_sent_s == 2.0 and rec.section_first_sent_s == [2.0, 2.0]
    assert rec.first_pass_done_s == t - 1.0
    assert s.state(9) is BundleState.WAITING


def test_dead_reverse_link_fails_after_bounded_retries():
    cfg = LinkConfig(mtu_bytes=128, rto_s=2.0, nak_timeout_s=2.0, max_retries=3)
    s, r = Sender(cfg), Receiver(cfg)
    s.submit(0, [bytes(300)], 0.0)
    rng = np.random.default_rng(0)
    rx, tx = run(s, r, Wire(rng, reverse_loss=1.0, drop_index={1}), max_steps=100)
    failed = [e for e in tx if isinstance(e, BundleFailed)]
    assert len(failed) == 1 and s.records[0].eof_resends == 3
    assert s.state(0) is BundleState.FAILED and s.next_timer() is None
    assert [e for e in rx if isinstance(e, ReceiverGaveUp)]
    assert not r.is_complete(0)


def test_gaps_found_between_polls_share_one_nak_frame():
    from textboost.protocol.frames import decode_feedback, decode_nak

    cfg = LinkConfig(mtu_bytes=64, arq="immediate")
    s, r = Sender(cfg), Receiver(cfg)
    s.submit(0, [bytes(range(200)) * 3], 0.0)
    frames = s.poll_transmit(0.0)
    lost = {3, 5, 6, 9}
    for n, f in enumerate(frames[:-1]):  # everything but EOF, no poll in between
        if n not in lost:
            r.receive(f, 0.0)
    r.receive(frames[4], 0.0)  # a duplicate changes nothing
    (nak,) = r.poll_transmit(0.0)
    epoch, body = decode_feedback(decode_frame(nak, cfg, PEER).payload)
    assert epoch == s.epoch == 0
    ranges = decode_nak(body)
    first_data = [decode_frame(frames[n], cfg, PEER).index for n in sorted(lost)]
    wanted = sorted((0, i) for i in first_data)
    assert sorted((x.segment, i) for x in ranges for i in range(x.start, x.start + x.count)) == (
        wanted
    )
    assert r.poll_transmit(0.0) == []
    assert s.receive(nak, 1.0) == []
    for f in s.poll_transmit(1.0):
        r.receive(f, 1.0)
    assert r.is_complete(0)


def test_one_way_survives_a_lost_descriptor():
    cfg = LinkConfig(mtu_bytes=64, arq="none")
    s, r = Sender(cfg), Receiver(cfg)
    sections = [b"head", bytes(range(150))]
    s.submit(0, sections, 0.0)
    frames = s.poll_transmit(0.0)
    kinds = [decode_frame(f, cfg, PEER) for f in frames]
    assert kinds[0].type is FrameType.HELLO  # one-way: a HELLO opens every bundle
    assert kinds[-1].flags & Flag.RETX and kinds[-1].index == 0  # fragment 0 goes twice
    assert kinds[-1].payload == kinds[1].payload
    kept = frames[:1] + frames[2:]  # the first copy of fragment 0 is lost
    events = [e for f in kept for e in r.receive(f, 0.0)]
    assert delivered(events) == {0: tuple(sections)}
    assert s.stats.efficiency == pytest.approx(sum(map(len, sections)) / sum(map(len, frames)))


def test_frames_over_a_byte_stream_one_byte_at_a_time():
    """A serial link: SLIP-framed frames fed to the receiver one byte at a time give the
    same events as frames handed over whole."""
    from textboost.protocol import StreamDeframer, slip_encode

    rng = np.random.default_rng(8)
    cfg = LinkConfig(mtu_bytes=80, arq="none")
    s = Sender(cfg)
    data = bundles(rng, 3)
    for b, sections in data.items():
        s.submit(b, sections, 0.0)
    frames = s.poll_transmit(0.0)
    r1, r2 = Receiver(cfg), Receiver(cfg)
    whole = [e for f in frames for e in r1.receive(f, 0.0)]
    stream = b"".join(slip_encode(f) for f in frames)
    deframer = StreamDeframer(max_frame_bytes=cfg.mtu_bytes)
    bytewise = [
        e
        for i in range(len(stream))
        for f in deframer.feed(stream[i : i + 1])
        for e in r2.receive(f, 0.0)
    ]
    assert bytewise == whole
    assert delivered(whole) == {b: tuple(v) for b, v in data.items()}
