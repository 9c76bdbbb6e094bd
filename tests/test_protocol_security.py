"""Authentication, replay protection and memory bounds of textboost.protocol (issue 16):
forged, replayed (later, after a restart of either end, past the 16-bit id wrap), truncated
and reordered frames are dropped, counted and never delivered; forged headers cannot make
the receiver allocate; the frame parser and receiver survive fuzzing."""

from __future__ import annotations

import contextlib
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.protocol_link import exchange
from textboost.protocol import (
    BundleAcked,
    BundleDelivered,
    BundleState,
    Event,
    Frame,
    FrameType,
    LinkConfig,
    LocalProtocolError,
    ProtocolError,
    Receiver,
    ReceiverGaveUp,
    ReplayState,
    ReplayWindow,
    Sender,
    decode_frame,
    encode_frame,
)
from textboost.protocol.frames import (
    Flag,
    FrameError,
    decode_feedback,
    decode_nak,
    encode_feedback,
    seal,
)

pytestmark = pytest.mark.edge

KEY = bytes(range(32))
CFG_KEY = LinkConfig(mtu_bytes=128, auth_key=KEY, key_id=3)
CFG_OPEN = LinkConfig(mtu_bytes=128)


def delivered(events: list[Event]) -> list[tuple[int, int, tuple[bytes, ...]]]:
    return [(e.epoch, e.bundle_id, e.sections) for e in events if isinstance(e, BundleDelivered)]


def reseal(body: bytes, cfg: LinkConfig, epoch: int = 4) -> bytes:
    """What an attacker who knows the key would send: tag and FCS recomputed (a short
    header: with the sender's ``epoch`` and the packet number's low 16 bits as its value)."""
    try:
        return seal(body, cfg)
    except FrameError:
        return seal(body, cfg, epoch, int.from_bytes(body[1:3].ljust(2, b"\0"), "big"))


def is_long(frame: bytes) -> bool:
    return bool(frame[0] & 0x04)


def recrc(frame: bytes, epoch: int, pn: int, crc_bits: int = 32) -> bytes:
    """``frame`` without its FCS, the public CRC recomputed (no key needed)."""
    return seal(frame, LinkConfig(mtu_bytes=1500, crc_bits=crc_bits), epoch, pn)


# --- forged, tampered, truncated ----------------------------------------------------------


def test_forged_tampered_and_wrong_key_id_frames_are_dropped_and_counted():
    s, r = Sender(CFG_KEY, epoch=1), Receiver(CFG_KEY, epoch=1)
    s.submit(0, [b"header", b"y" * 300], 0.0)
    frames = s.poll_transmit(0.0)
    attacker_cfgs = [
        LinkConfig(mtu_bytes=128, auth_key=bytes(32), key_id=3),  # wrong key
        LinkConfig(mtu_bytes=128, auth_key=KEY, key_id=4),  # right key, other key id
    ]
    forged = 0
    for cfg in attacker_cfgs:
        evil = Sender(cfg, epoch=2)
        evil.submit(0, [b"evil"], 0.0)
        for f in evil.poll_transmit(0.0):
            assert r.receive(f, 0.0) == []
            forged += 1
    # the forgers' short DATA frames: no epoch known yet, held until one is
    assert r.stats.dropped_auth == forged - 2 and r.stats.dropped_stale == 0
    assert any("key id" in d.detail for d in r.take_drops())
    hello, frames = frames[0], frames[1:]
    peer = ReplayState(epoch=1, top=0)
    for f in frames:  # flip a payload byte, recompute the public CRC
        bad = bytearray(f[:-4])
        bad[-CFG_KEY.tag_bytes - 1] ^= 0x40
        pn = decode_frame(f, CFG_KEY, peer).pn
        assert r.receive(recrc(bytes(bad), 1, pn), 0.0) == []
    n_long = sum(map(is_long, frames))  # the short ones: no epoch known yet, held
    assert r.stats.dropped_auth == forged - 2 + n_long
    assert r.stats.frames_received == 0 and r.memory_bytes == 0
    drops = r.take_drops()
    assert {d.reason for d in drops} == {"auth"}
    assert all(d.epoch is None for d in drops)  # nothing of a forged frame is trusted
    # The genuine HELLO gives the epoch: the held frames are read again and fail now (the
    # forgers' under another epoch: FCS; the tampered ones: tag), the genuine ones pass.
    events = [e for f in [hello, *frames] for e in r.receive(f, 0.0)]
    assert delivered(events) == [(1, 0, (b"header", b"y" * 300))]
    assert r.stats.dropped_corrupt == 2
    assert r.stats.dropped_auth == forged - 2 + len(frames)


@pytest.mark.parametrize("cfg", [CFG_KEY, CFG_OPEN], ids=["key", "no-key"])
def test_truncated_frames_are_dropped_never_delivered(cfg):
    s, r = Sender(cfg, epoch=5), Receiver(cfg)
    s.submit(7, [b"abc" * 50], 0.0)
    frames = s.poll_transmit(0.0)
    assert r.receive(frames[0], 0.0) == []  # the HELLO: the sender's epoch is known
    for f in frames:
        for n in range(len(f)):
            assert r.receive(f[:n], 0.0) == []
    assert r.stats.frames_received == 1
    assert r.stats.dropped_corrupt == sum(len(f) for f in frames)
    events = [e for f in frames[1:] for e in r.receive(f, 0.0)]
    assert delivered(events) == [(5, 7, (b"abc" * 50,))]


# --- replays ------------------------------------------------------------------------------


@pytest.mark.parametrize("cfg", [CFG_KEY, CFG_OPEN], ids=["key", "no-key"])
def test_replayed_frames_are_dropped_and_counted(cfg):
    s, r = Sender(cfg, epoch=1), Receiver(cfg, epoch=1)
    s.submit(0, [b"h" * 20, b"z" * 200], 0.0)
    fwd, back, events = exchange(s, r)
    assert len(delivered(events)) == 1 and s.state(0) is BundleState.DONE
    r.take_drops()
    for f in fwd:  # the whole recorded session again, twice
        assert r.receive(f, 10.0) == [] and r.receive(f, 10.0) == []
    assert r.poll_transmit(10.0) == []  # not even a FIN: replays are dropped before parsing
    assert r.stats.dropped_replay == 2 * len(fwd)
    assert {d.reason for d in r.take_drops()} == {"replay"}
    for f in back:  # the receiver's FIN and NAKs replayed to the sender
        assert s.receive(f, 10.0) == []
    assert s.stats.dropped_replay == len(back)


def test_finished_bundle_replayed_after_1025_later_bundles_is_not_delivered():
    cfg = LinkConfig(mtu_bytes=128, auth_key=KEY)
    s, r = Sender(cfg, epoch=9), Receiver(cfg, epoch=9)
    s.submit(0, [b"first"], 0.0)
    old, old_back, events = exchange(s, r)
    assert delivered(events) == [(9, 0, (b"first",))]
    for b in range(1, 1100):  # 1 099 later bundles: more than the 1 024 remembered
        s.submit(b, [b.to_bytes(4, "big")], float(b))
        _, _, events = exchange(s, r, float(b))
        assert len(delivered(events)) == 1
    for f in old:
        assert r.receive(f, 2000.0) == []
    assert r.poll_transmit(2000.0) == []
    assert r.stats.dropped_stale == len(old)  # far below the replay window
    # An old FIN does not ack a new bundle that reuses the id.
    s.submit(0, [b"second"], 3000.0)
    s.poll_transmit(3000.0)
    for f in old_back:
        assert s.receive(f, 3000.0) == []
    assert s.state(0) is BundleState.WAITING


def test_reordering_within_the_window_is_fine_beyond_it_dropped_and_repaired():
    cfg = LinkConfig(mtu_bytes=64, replay_window=4, rto_s=1.0, nak_timeout_s=1.0)
    s, r = Sender(cfg), Receiver(cfg)
    data = bytes(range(256)) * 2
    s.submit(0, [data], 0.0)
    hello, *frames = s.poll_transmit(0.0)  # HELLO, 11 DATA, EOF
    r.receive(hello, 0.0)
    rng = np.random.default_rng(0)
    late = frames[1]
    order = frames[:1] + frames[2:5]
    rng.shuffle(order)  # within the window of 4
    events = [e for f in order for e in r.receive(f, 0.0)]
    assert r.stats.dropped_stale == r.stats.dropped_replay == 0
    events += [e for f in frames[5:] for e in r.receive(f, 0.0)]
    assert r.receive(late, 0.0) == []  # reordered beyond the window: dropped
    assert r.stats.dropped_stale == 1 and not delivered(events)
    for f in r.poll_transmit(0.0):  # the EOF's NAK asks for it again: a fresh packet number
        s.receive(f, 0.0)
    for f in s.poll_transmit(1.0):
        events += r.receive(f, 1.0)
    assert delivered(events) == [(0, 0, (data,))]


def test_sender_restart_with_a_new_epoch():
    r = Receiver(CFG_KEY, epoch=1)
    s1 = Sender(CFG_KEY, epoch=100)
    s1.submit(0, [b"before restart"], 0.0)
    old, old_back, events = exchange(s1, r)
    assert delivered(events) == [(100, 0, (b"before restart",))]
    s1.submit(1, [b"x" * 500], 1.0)  # in flight when the edge loses power
    in_flight = s1.poll_transmit(1.0)[:2]
    for f in in_flight:
        r.receive(f, 1.0)
    assert r.memory_bytes > 0

    s2 = Sender(CFG_KEY, epoch=101)  # ids start again at 0 in the new epoch
    s2.submit(0, [b"after restart"], 2.0)
    frames = s2.poll_transmit(2.0)
    events = r.receive(frames[0], 2.0)
    gave_up = [e for e in events if isinstance(e, ReceiverGaveUp)]
    assert [(e.epoch, e.bundle_id) for e in gave_up] == [(100, 1)]
    assert r.memory_bytes < 200  # the dead session's fragments are freed
    for f in frames[1:]:
        events += r.receive(f, 2.0)
    assert delivered(events) == [(101, 0, (b"after restart",))]
    assert r.records[0].epoch == 101 and r.is_complete(0) and not r.is_complete(0, epoch=100)
    # The old session replayed: every frame dropped as stale, nothing delivered twice.
    # (long-form frames name epoch 100: stale; short ones are read as epoch 101 and fail
    # the FCS and tag, which cover the epoch)
    for f in old + in_flight:
        assert r.receive(f, 3.0) == []
    n_long = sum(map(is_long, old + in_flight))
    assert r.stats.dropped_stale == n_long and n_long >= 2
    assert r.stats.dropped_corrupt == len(old) + len(in_flight) - n_long
    # The old session's FIN for bundle 0 does not ack the new bundle 0 (echoed epoch 100).
    s2b = Sender(CFG_KEY, epoch=102)
    s2b.submit(0, [b"again"], 4.0)
    s2b.poll_transmit(4.0)
    for f in old_back:
        assert s2b.receive(f, 4.0) == []
    assert s2b.state(0) is BundleState.WAITING
    assert s2b.stats.dropped_stale == len(old_back)


def test_receiver_restart_with_its_persisted_window():
    s = Sender(CFG_KEY, epoch=7)
    r1 = Receiver(CFG_KEY, epoch=50)
    old = []
    for b in range(3):
        s.submit(b, [bytes([b]) * 300], float(b))
        fwd, _, events = exchange(s, r1, float(b))
        old += fwd
        assert len(delivered(events)) == 1
        saved = r1.replay_state.to_bytes()  # persisted with each delivered bundle
    old_fin = r1.poll_transmit(9.0)  # nothing left
    assert old_fin == []
    s.submit(3, [b"late"], 9.0)
    _fwd3, back3, _ = exchange(s, r1, 9.0)
    # Power cut, then a restart with a new epoch and the saved window.
    r2 = Receiver(CFG_KEY, epoch=51, replay_state=ReplayState.from_bytes(saved))
    for f in old:  # bundles 0..2 replayed: all dropped
        assert r2.receive(f, 10.0) == []
    assert r2.stats.dropped_replay == len(old) and r2.poll_transmit(10.0) == []
    # Bundle 3 was delivered after the state was saved: the driver persists the window
    # with each delivery, so its frames come in as new (the services deduplicate by id).
    # The live sender goes on; the new receiver takes its frames.
    s.submit(4, [b"after"], 11.0)
    _, _back, events = exchange(s, r2, 11.0)
    assert delivered(events) == [(7, 4, (b"after",))]
    # The old receiver's FIN for bundle 3, replayed once the sender has heard epoch 51.
    assert s.receive(back3[-1], 12.0) == []
    assert s.stats.dropped_stale + s.stats.dropped_replay >= 1
    assert ReplayState.from_bytes(b"") == ReplayState()


def test_bundle_ids_past_the_16_bit_wrap():
    cfg = CFG_KEY
    s, r = Sender(cfg, epoch=1), Receiver(cfg, epoch=1)
    s.submit(5, [b"five"], 0.0)
    old5, back5, events = exchange(s, r)
    ids = [0xFFFF, 0x10000, 0x10005, 0xFFFF_FFFF]
    for b in ids:
        s.submit(b, [b.to_bytes(4, "big")], 1.0)
    _, _, events = exchange(s, r, 1.0)
    assert sorted(i for _, i, _ in delivered(events)) == sorted(ids)
    assert all(r.is_complete(b) for b in ids) and r.records[5].delivered_s == 0.0
    # Bundle 0x10005 shares its low 16 bits with bundle 5: nothing of 5 touches it.
    s.submit(0x20005, [b"new"], 2.0)
    s.poll_transmit(2.0)
    for f in back5:
        s.receive(f, 2.0)
    assert s.state(0x20005) is BundleState.WAITING
    for f in old5:
        assert r.receive(f, 2.0) == []
    with pytest.raises(LocalProtocolError, match="bundle_id"):
        s.submit(1 << 32, [b"x"], 0.0)


def test_no_key_still_drops_duplicates_and_old_epochs():
    """Simulated links run without a key: no authentication, but the epoch and window
    still keep duplicated and stale frames from being taken twice."""
    s, r = Sender(CFG_OPEN), Receiver(CFG_OPEN)
    s.submit(0, [b"a" * 300], 0.0)
    frames = s.poll_transmit(0.0)
    events = []
    for f in frames:
        events += r.receive(f, 0.0) + r.receive(f, 0.0)
    assert len(delivered(events)) == 1 and r.stats.dropped_replay == len(frames)
    assert r.stats.duplicates == 0  # the window caught them before the reassembly


# --- memory bounds ------------------------------------------------------------------------


def forged_data(
    cfg: LinkConfig, bundle_id: int, segment: int, index: int, payload: bytes, pn: int, last=True
) -> bytes:
    frame = Frame(
        type=FrameType.DATA,
        bundle_id=bundle_id,
        segment=segment,
        index=index,
        flags=Flag.LAST if last else Flag.NONE,
        payload=payload,
        pn=pn,
    )
    return encode_frame(frame, cfg)


def test_forged_descriptor_claiming_huge_sizes_does_not_allocate():
    """The probe of issue 16: frames and an EOF claiming 254 sections of 16 MiB. No key is
    needed to send them; the receiver must not allocate for the claim."""
    cfg = LinkConfig(mtu_bytes=256)
    size = cfg.fragment_payload_bytes
    desc = bytes([254, 0]) + b"".join(
        b"\xff\xff\xff\x07" + b"\0\0\0\0" for _ in range(254)
    )  # varint 16 MiB - 1, check
    r = Receiver(cfg)
    tracemalloc.start()
    r.receive(encode_frame(Frame(type=FrameType.HELLO, bundle_id=1, pn=0), cfg), 0.0)
    pn = 1
    for i in range(-(-len(desc) // size)):
        chunk = desc[i * size : (i + 1) * size]
        r.receive(forged_data(cfg, 1, 0, i, chunk.ljust(size, b"\0"), pn, last=False), 0.0)
        pn += 1
    r.receive(encode_frame(Frame(type=FrameType.EOF, bundle_id=1, pn=pn), cfg), 0.0)
    naks = r.poll_transmit(0.0)
    r.handle_timeout(1e6)
    naks += r.poll_transmit(1e6)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2 << 20
    # The descriptor's fragment is thrown away; what is held is at most the forged bytes.
    assert r.stats.dropped_malformed >= 1 and r.memory_bytes <= pn * size
    assert any("max_bundle_bytes" in d.detail for d in r.take_drops())
    # NAK state is ranges: one small NAK frame asks for the rest of segment 0.
    assert len(naks) == 2
    assert all(len(f) <= cfg.mtu_bytes for f in naks)


def test_missing_fragments_are_ranges_not_one_entry_each():
    cfg = LinkConfig(mtu_bytes=256, max_bundle_bytes=4 << 20, receiver_memory_bytes=8 << 20)
    s, r = Sender(cfg), Receiver(cfg)
    s.submit(0, [bytes(4 << 20)], 0.0)
    frames = s.poll_transmit(0.0)
    peer = ReplayState(epoch=0, top=0)
    data = {k.index: f for f in frames if (k := decode_frame(f, cfg, peer)).type is FrameType.DATA}
    n = max(data) + 1  # 16 982
    for f in (frames[0], data[0], data[5000], frames[-1]):  # HELLO, 0, 5000, and EOF
        r.receive(f, 0.0)
    b = next(iter(r._bundles.values()))
    assert r._missing(b, behind_hwm=False) == [(0, 1, 5000), (0, 5001, n)]
    (nak,) = r.poll_transmit(0.0)
    _epoch, body = decode_feedback(decode_frame(nak, cfg).payload)
    assert [(x.start, x.count) for x in decode_nak(body)] == [(1, 4999), (5001, n - 5001)]


def test_descriptor_may_not_claim_more_than_max_bundle_bytes():
    cfg = LinkConfig(mtu_bytes=128, max_bundle_bytes=1000, receiver_memory_bytes=4000)
    with pytest.raises(LocalProtocolError, match="max_bundle_bytes"):
        Sender(cfg).submit(0, [bytes(600), bytes(401)], 0.0)
    big = LinkConfig(mtu_bytes=128, max_bundle_bytes=2000, receiver_memory_bytes=4000)
    s, r = Sender(big), Receiver(cfg)  # a sender configured larger than the receiver
    s.submit(0, [bytes(600), bytes(401)], 0.0)
    _, _, events = exchange(s, r)
    assert not delivered(events) and r.stats.dropped_malformed >= 1
    assert r.memory_bytes <= 1000 + 128
    s2, r2 = Sender(cfg), Receiver(cfg)
    s2.submit(0, [bytes(600), bytes(400)], 0.0)  # exactly at the limit
    assert len(delivered(exchange(s2, r2)[2])) == 1


def test_memory_budget_bounds_forged_bundles_and_evicts_given_up_ones():
    cfg = LinkConfig(
        mtu_bytes=128, max_bundle_bytes=2000, receiver_memory_bytes=4000, max_retries=0,
        nak_timeout_s=1.0,
    )
    r = Receiver(cfg)
    r.receive(encode_frame(Frame(type=FrameType.HELLO, bundle_id=0, pn=0), cfg), 0.0)
    for k in range(1, 501):  # forged fragments of 500 bundles, no key needed
        size = cfg.fragment_bytes(k)
        r.receive(forged_data(cfg, k, k % 200, 3, bytes(size), k, last=False), 0.0)
    assert r.memory_bytes <= 4000 and r.stats.dropped_memory > 400
    assert {d.reason for d in r.take_drops()} == {"memory"}
    r.handle_timeout(1.0)  # no EOF: nothing NAKed, nothing timed; nothing to give up
    # A legitimate bundle whose predecessor gave up gets through: given-up bundles' fragments
    # are evicted first.
    cfg2 = LinkConfig(mtu_bytes=128, max_bundle_bytes=2000, receiver_memory_bytes=2200,
                      max_retries=0, nak_timeout_s=1.0)
    s, r = Sender(cfg2, epoch=1), Receiver(cfg2)
    s.submit(0, [bytes(1900)], 0.0)
    frames = s.poll_transmit(0.0)
    for f in frames[:-2]:  # all but the last fragment, then the EOF
        r.receive(f, 0.0)
    r.receive(frames[-1], 0.0)
    assert [type(e) for e in r.handle_timeout(1.0)] == [ReceiverGaveUp]  # max_retries=0
    assert r.memory_bytes > 1700  # the given-up bundle still holds its fragments
    s.submit(1, [b"z" * 1900], 3.0)
    r_events = [e for f in s.poll_transmit(3.0) for e in r.receive(f, 3.0)]
    assert delivered(r_events) == [(1, 1, (b"z" * 1900,))]
    assert r.stats.dropped_memory == 0 and r.memory_bytes == 0


# --- the replay window itself ---------------------------------------------------------------


def test_replay_window_semantics_and_state_round_trip():
    w = ReplayWindow(8)
    assert w.check(3, 0) == "new_epoch"
    w.accept(3, 0)
    for pn in (2, 1, 5):
        assert w.check(3, pn) == "ok"
        w.accept(3, pn)
    assert w.check(3, 1) == "replay" and w.check(3, 5) == "replay"
    assert w.check(3, 3) == "ok"  # not seen yet, within the window
    w.accept(3, 10)
    assert w.check(3, 5) == "replay" and w.check(3, 4) == "ok"  # 6 below the top
    assert w.check(3, 2) == "too_old" and w.check(3, 0) == "too_old"  # 8 or more below
    assert w.check(2, 99) == "stale_epoch" and w.check(4, 0) == "new_epoch"
    w.accept(3, 0xFFFF_FFFF)  # a jump of 2^32 does not build a 2^32-bit integer
    assert w.state.seen == 1 and w.check(3, 10) == "too_old"
    w2 = ReplayWindow(8, ReplayState.from_bytes(w.state.to_bytes()))
    assert w2.state == w.state
    with pytest.raises(LocalProtocolError):
        ReplayState.from_bytes(b"\1\2")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"key_id": 256}, "key_id"),
        ({"replay_window": 0}, "replay_window"),
        ({"max_bundle_bytes": 0}, "max_bundle_bytes"),
        ({"max_bundle_bytes": 1 << 20, "receiver_memory_bytes": 1000}, "receiver_memory"),
    ],
)
def test_new_config_fields_are_validated(kwargs, field):
    with pytest.raises(LocalProtocolError, match=field):
        LinkConfig(**kwargs)
    with pytest.raises(LocalProtocolError, match="epoch"):
        Sender(CFG_OPEN, epoch=-1)
    with pytest.raises(LocalProtocolError, match="epoch"):
        Receiver(CFG_OPEN, epoch=1 << 32)


# --- fuzzing ---------------------------------------------------------------------------------

FUZZ_CFG = LinkConfig(
    mtu_bytes=96, auth_key=KEY, fec_k=3, fec_m=1, max_bundle_bytes=3000,
    receiver_memory_bytes=6000, arq="immediate",
)


def _real_frames() -> tuple[list[bytes], list[bytes]]:
    s, r = Sender(FUZZ_CFG, epoch=4), Receiver(FUZZ_CFG, epoch=8)
    s.submit(0, [b"h" * 30, b"z" * 150, b"y" * 400], 0.0)
    s.submit(1, [b"q" * 90], 0.0)
    fwd, back, _ = exchange(s, r)
    return fwd, back


FWD, BACK = _real_frames()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(FWD) - 1),
            st.sampled_from(["as is", "flip", "truncate", "reseal"]),
            st.integers(0, 1 << 16),
            st.integers(0, 255),
        ),
        max_size=40,
    )
)
def test_fuzz_receiver_with_mutated_replayed_reordered_frames(ops):
    """Real frames, in any order, replayed, bit-flipped, truncated, or re-tagged with the key
    after mutation (an insider's worst): the receiver never raises, stays within its memory
    budget and delivers only what the sender sent."""
    r = Receiver(FUZZ_CFG)
    sent = {0: (b"h" * 30, b"z" * 150, b"y" * 400), 1: (b"q" * 90,)}
    events: list[Event] = []
    for k, (i, how, pos, val) in enumerate(ops):
        f = FWD[i]
        if how == "flip":
            b = bytearray(f)
            b[pos % len(f)] ^= val or 1
            f = bytes(b)
        elif how == "truncate":
            f = f[: pos % len(f)]
        elif how == "reseal":
            body = bytearray(f[: -FUZZ_CFG.tag_bytes - 4])
            body[pos % len(body)] = val
            f = reseal(bytes(body), FUZZ_CFG)
        events += r.receive(f, float(k))
        r.poll_transmit(float(k))
        events += r.handle_timeout(float(k))
        assert r.memory_bytes <= FUZZ_CFG.receiver_memory_bytes
    for e in events:  # a mutated frame never makes a bundle that was not sent
        if isinstance(e, BundleDelivered):
            assert e.epoch == 4 and e.sections == sent[e.bundle_id]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    byte0=st.integers(0, 255),
    bundle=st.binary(max_size=6),
    index=st.binary(max_size=3),
    epoch=st.integers(0, 0xFFFF_FFFF),
    pn=st.integers(0, 0xFFFF_FFFF),
    payload=st.binary(max_size=70),
    key=st.sampled_from([None, KEY]),
    synced=st.booleans(),
)
def test_fuzz_frame_headers_never_crash_or_allocate(
    byte0, bundle, index, epoch, pn, payload, key, synced
):
    """Any compact header (long or short form, any type, flags, varint and index bytes) and
    payload that passes the FCS (and the tag: an insider with the key) reaches the parsers:
    both ends count and drop or take it, never raise, and the receiver holds no more than
    one MTU for it."""
    cfg = LinkConfig(
        mtu_bytes=96, auth_key=key, fec_k=2, fec_m=1, max_bundle_bytes=4096,
        receiver_memory_bytes=8192,
    )
    if byte0 & 0x04:  # long form: epoch [key id] packet number
        head = struct.pack(">I", epoch) + (b"\3" if byte0 & 0x02 else b"") + struct.pack(">I", pn)
    else:
        head = (pn & 0xFFFF).to_bytes(2, "big")
    body = bytes([byte0]) + head + bundle + index + payload
    r, s = Receiver(cfg), Sender(cfg)
    if synced:  # the receiver holds epoch 9 (a HELLO at packet 0): short forms decode
        r.receive(encode_frame(Frame(type=FrameType.HELLO, bundle_id=0, epoch=9), cfg), 0.0)
    data = seal(body, cfg, *((None, None) if byte0 & 0x04 else (9, pn & 0xFFFF)))
    s.submit(0, [b"x" * 100], 0.0)
    s.poll_transmit(0.0)
    with contextlib.suppress(ProtocolError):
        decode_frame(data, cfg, r.replay_state)
    r.receive(data, 0.0)
    r.receive(data, 0.0)  # and its replay
    s.receive(data, 0.0)
    assert r.memory_bytes <= cfg.mtu_bytes
    r.poll_transmit(1.0)
    r.handle_timeout(1e9)
    s.handle_timeout(1e9)
    for f in r.poll_transmit(1e9):
        assert len(f) <= cfg.mtu_bytes


def test_feedback_must_echo_the_senders_epoch():
    s = Sender(CFG_KEY, epoch=3)
    s.submit(0, [b"abc"], 0.0)
    s.poll_transmit(0.0)
    r_cfg = CFG_KEY
    fin = Frame(type=FrameType.FIN, bundle_id=0, payload=encode_feedback(2), epoch=1, pn=0)
    assert s.receive(encode_frame(fin, r_cfg), 0.0) == []
    assert s.stats.dropped_stale == 1 and s.state(0) is BundleState.WAITING
    fin = Frame(type=FrameType.FIN, bundle_id=0, payload=encode_feedback(3), epoch=1, pn=1)
    assert [type(e) for e in s.receive(encode_frame(fin, r_cfg), 0.0)] == [BundleAcked]


def test_fin_only_once_the_driver_made_the_bundle_durable_and_no_redelivery_after_restart():
    cfg = LinkConfig(mtu_bytes=128, auth_key=KEY, rto_s=1.0)
    s = Sender(cfg, epoch=1)
    r = Receiver(cfg, epoch=1, fin_on_delivery=False)
    s.submit(0, [b"photo" * 40], 0.0)
    events = [e for f in s.poll_transmit(0.0) for e in r.receive(f, 0.0)]
    assert len(delivered(events)) == 1
    assert r.poll_transmit(0.0) == []  # delivered, not yet durable: no FIN
    s.handle_timeout(1.0)  # the sender re-sends EOF: still no FIN
    for f in s.poll_transmit(1.0):
        r.receive(f, 1.0)
    assert r.poll_transmit(1.0) == [] and s.state(0) is BundleState.WAITING
    with pytest.raises(LocalProtocolError, match="not delivered"):
        r.acknowledge(1, epoch=1)
    r.acknowledge(0, epoch=1)  # stored: FIN now
    for f in r.poll_transmit(2.0):
        s.receive(f, 2.0)
    assert s.state(0) is BundleState.DONE

    # The ground crashed after storing bundle 5 but before its FIN went out: restarted with
    # what it stored, it FINs the sender's re-sent EOF instead of delivering bundle 5 again.
    s.submit(5, [b"again" * 40], 3.0)
    frames = s.poll_transmit(3.0)
    events = [e for f in frames for e in r.receive(f, 3.0)]
    assert len(delivered(events)) == 1 and r.poll_transmit(3.0) == []
    r2 = Receiver(cfg, epoch=2, replay_state=r.replay_state, fin_on_delivery=False)
    r2.restore_delivered(5, epoch=1)
    s.handle_timeout(10.0)
    resent = s.poll_transmit(10.0)
    events = [e for f in resent + frames for e in r2.receive(f, 10.0)]
    assert events == [] and r2.stats.dropped_replay == len(frames)
    for f in r2.poll_transmit(10.0):
        s.receive(f, 10.0)
    assert s.state(5) is BundleState.DONE


def test_a_flood_of_forged_bundle_ids_is_bounded():
    """Without a key anyone can open bundles: the receiver keeps at most max_open_bundles,
    forgetting given-up ones first, and a bundle under reassembly is never pushed out."""
    cfg = LinkConfig(mtu_bytes=128, receiver_memory_bytes=1 << 20, max_retries=0,
                     nak_timeout_s=1.0)
    r = Receiver(cfg)
    assert r.max_open_bundles == 256
    s = Sender(cfg, epoch=0)
    s.submit(0, [b"real" * 100], 0.0)
    frames = s.poll_transmit(0.0)
    r.receive(frames[0], 0.0)  # HELLO
    r.receive(frames[1], 0.0)  # a real bundle, under way
    pn = 10_000
    for k in range(1, 2000):  # forged EOFs of 1 999 bundles
        pn += 1
        r.receive(encode_frame(Frame(type=FrameType.EOF, bundle_id=k, pn=pn), cfg), 0.0)
    assert len(r._bundles) == 256 and r.stats.dropped_memory == 2000 - 256
    r.poll_transmit(0.0)
    r.handle_timeout(5.0)  # the forged ones (and the real one) give up, NAKs unanswered
    for k in range(2000, 4000):
        pn += 1
        r.receive(encode_frame(Frame(type=FrameType.EOF, bundle_id=k, pn=pn), cfg), 6.0)
    assert len(r._bundles) <= 256 and len(r.records) <= 257
