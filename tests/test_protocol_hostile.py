"""Hostile frames against the receiver (issue 22): short PARITY rows on FEC links, every
frame kind with any fields and payload (FEC on and off, with and without a key), and a
forged epoch on a keyless link, which must not block the real sender for good."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.protocol_link import exchange
from textboost.bitstream.varint import varint
from textboost.protocol import (
    BundleDelivered,
    Frame,
    FrameType,
    LinkConfig,
    ProtocolError,
    Receiver,
    ReplayState,
    Sender,
    decode_frame,
    encode_frame,
)
from textboost.protocol.frames import PN_SEGMENT, Flag, NakRange, encode_feedback

KEY = bytes(range(32))
FEC_OPEN = LinkConfig(mtu_bytes=128, fec_k=3, fec_m=1, arq="none", max_bundle_bytes=4096,
                      receiver_memory_bytes=16384)  # fmt: skip


def parity(cfg: LinkConfig, payload: bytes, pn: int, long: bool = True) -> bytes:
    frame = Frame(type=FrameType.PARITY, bundle_id=5, payload=payload, epoch=4, pn=pn)
    return encode_frame(frame, cfg, long=long)


@pytest.mark.parametrize("n_src", [1, 2, 3])
def test_parity_with_a_three_byte_payload_is_dropped_as_malformed(n_src):
    """Issue 22 item 2: ``parity index | n_src | one byte`` made ``Receiver.receive`` raise
    ``struct.error`` (a 1-byte row recovered as the group's only fragment)."""
    r = Receiver(FEC_OPEN, epoch=8)
    events = r.receive(parity(FEC_OPEN, bytes([0, n_src, 0]), pn=100), 0.0)
    assert events == [] and r.stats.dropped_malformed == 1
    (drop,) = r.take_drops()
    assert drop.reason == "malformed" and "parity payload length" in drop.detail
    # the link goes on: a real bundle still arrives whole
    s = Sender(FEC_OPEN, epoch=4)
    s.submit(0, [b"h" * 30, b"z" * 150], 0.0)
    got = [e for f in s.poll_transmit(0.0) for e in r.receive(f, 0.0)]
    assert [e.sections for e in got if isinstance(e, BundleDelivered)] == [(b"h" * 30, b"z" * 150)]


def test_parity_rows_wider_than_a_fragment_are_dropped():
    top = 2 + 3 + FEC_OPEN.fragment_bytes(5)
    r = Receiver(FEC_OPEN, epoch=8)
    r.receive(encode_frame(Frame(type=FrameType.HELLO, bundle_id=5, epoch=4, pn=0), FEC_OPEN), 0.0)
    r.receive(parity(FEC_OPEN, bytes([0, 1]) + bytes(top - 1), pn=1, long=False), 0.0)
    assert r.stats.dropped_malformed == 1 and r.memory_bytes == 0
    r.receive(parity(FEC_OPEN, bytes([0, 2]) + bytes(top - 2), pn=2, long=False), 0.0)
    assert r.stats.dropped_malformed == 1 and r.memory_bytes == top - 2  # the widest row


def _session(cfg: LinkConfig) -> list[bytes]:
    s = Sender(cfg, epoch=4)
    s.submit(0, [b"h" * 30, b"z" * 150, b"y" * 300], 0.0)
    s.submit(1, [b"q" * 90], 0.0)
    return s.poll_transmit(0.0)


CONFIGS = [
    LinkConfig(mtu_bytes=96, max_bundle_bytes=4096, receiver_memory_bytes=16384, **extra)
    for extra in (
        {"fec_k": 3, "fec_m": 1, "arq": "none"},
        {"fec_k": 2, "fec_m": 2, "auth_key": KEY},
        {"fec_k": 4, "fec_m": 1, "crc_bits": 16, "arq": "immediate"},
        {},
        {"auth_key": KEY, "crc_bits": 16},
    )
]
SESSIONS = [_session(cfg) for cfg in CONFIGS]

parity_prefixed = st.builds(  # parity index, source frames, then a short or long row
    lambda p, n, row: bytes([p, n]) + row,
    st.integers(0, 2), st.integers(0, 4), st.binary(max_size=6),
)  # fmt: skip


def forged(kinds: list[FrameType], payload: st.SearchStrategy[bytes]) -> st.SearchStrategy:
    return st.tuples(
        st.sampled_from(kinds),
        st.integers(0, 3),  # bundle id
        st.integers(0, 3),  # segment
        st.sampled_from([0, 1, 2, 3, 4, 5, 127, 128, 32767]),  # fragment / FEC group index
        st.sampled_from([Flag.NONE, Flag.LAST, Flag.RETX, Flag.LAST | Flag.RETX]),
        payload,
        st.booleans(),  # long form
    )


packet_nak = st.builds(  # the echoed epoch, a range of packet numbers, then anything
    lambda start, count, tail: (4).to_bytes(4, "big") + bytes([PN_SEGMENT]) + varint(start)
    + varint(count) + tail,
    st.one_of(st.integers(0, 40), st.integers(0, 1 << 33)),
    st.one_of(st.integers(0, 40), st.integers(0, 1 << 17)),
    st.binary(max_size=6),
)  # fmt: skip
any_frame = forged(list(FrameType), st.one_of(
    st.binary(max_size=80),
    parity_prefixed,
    st.builds(lambda body: (4).to_bytes(4, "big") + body, st.binary(max_size=12)),  # feedback
    packet_nak,
))  # fmt: skip
parity_frame = forged([FrameType.PARITY], parity_prefixed)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    k=st.integers(0, len(CONFIGS) - 1),
    ops=st.lists(st.one_of(st.integers(0, 40), any_frame, parity_frame), max_size=40),
)
def test_every_frame_kind_with_any_fields_never_raises(k, ops):
    """Every frame kind (DATA PARITY EOF NAK FIN HELLO), any segment, index, flags and
    payload, sealed as the sender would (FCS, and the tag: an insider with the key), mixed
    with the real frames of a session, on FEC links and links without FEC: both ends count
    and drop or take each one, never raise, and the receiver stays within its memory."""
    cfg = CONFIGS[k]
    real = SESSIONS[k]
    r, s = Receiver(cfg, epoch=8), Sender(cfg, epoch=4)
    s.submit(0, [b"x" * 100], 0.0)
    s.poll_transmit(0.0)
    pn = 1 << 20  # above the real session's numbers: forged frames are new to the window
    for t, op in enumerate(ops):
        if isinstance(op, int):
            data = real[op % len(real)]
        else:
            ftype, bundle, segment, index, flags, payload, long = op
            frame = Frame(type=ftype, bundle_id=bundle, segment=segment, index=index,
                          flags=flags, payload=payload, epoch=4, pn=pn)  # fmt: skip
            pn += 1
            try:
                data = encode_frame(frame, cfg, long=long or ftype is FrameType.HELLO)
            except ProtocolError:  # does not fit the MTU
                continue
        before = r.stats.frames_received + sum(
            getattr(r.stats, f) for f in r.stats.__slots__ if f.startswith("dropped_")
        )
        with contextlib.suppress(ProtocolError):
            decode_frame(data, cfg, r.replay_state)
        r.receive(data, float(t))
        s.receive(data, float(t))
        after = r.stats.frames_received + sum(
            getattr(r.stats, f) for f in r.stats.__slots__ if f.startswith("dropped_")
        )
        assert after >= before  # taken or dropped, and counted either way (or held unsynced)
        assert 0 <= r.memory_bytes <= cfg.receiver_memory_bytes
        for f in r.poll_transmit(float(t)):
            assert len(f) <= cfg.mtu_bytes
    r.handle_timeout(1e9)
    s.handle_timeout(1e9)


@settings(max_examples=200, deadline=None)
@given(ranges=st.lists(st.tuples(st.integers(0, 90), st.integers(1, 120)), min_size=1, max_size=6))
def test_a_nak_of_any_packet_numbers_resends_the_words_among_them_only(ranges):
    """A NAK of packet numbers (sent for a gap that may hide a words segment lost whole)
    re-sends exactly the words frames among those numbers, once each, and nothing else:
    not picture frames, HELLOs or EOFs, not numbers never used."""
    cfg = LinkConfig(mtu_bytes=64, nak_timeout_s=1.0)  # words_first, deferred
    s = Sender(cfg, epoch=4)
    for b in range(3):
        s.submit(b, [bytes(range(120)), bytes(300)], 0.0)
    words: dict[int, tuple[int, int]] = {}  # packet number -> (bundle, fragment)
    top = 0
    for f in s.poll_transmit(0.0):
        k = decode_frame(f, cfg, ReplayState(epoch=4, top=top))
        top = k.pn
        if k.type is FrameType.DATA and k.segment == 0:
            words[k.pn] = (k.bundle_id, k.index)
    assert len(words) >= 6 and top > len(words)  # pictures, HELLOs and EOFs besides
    body = b"".join(NakRange(PN_SEGMENT, a, n).to_bytes() for a, n in ranges)
    nak = Frame(type=FrameType.NAK, bundle_id=0, payload=encode_feedback(4, body), epoch=8, pn=0)
    s.receive(encode_frame(nak, cfg, long=True), 1.0)
    again = []
    for f in s.poll_transmit(1.0):
        k = decode_frame(f, cfg, ReplayState(epoch=4, top=top))
        top = k.pn
        assert k.type is FrameType.DATA and k.segment == 0 and k.flags & Flag.RETX
        again.append((k.bundle_id, k.index))
    asked = {p for a, n in ranges for p in range(a, a + n)}
    assert sorted(again) == sorted(v for p, v in words.items() if p in asked)


# --- a forged epoch on a keyless link (issue 22 item 8) -------------------------------------

DEFERRED_OPEN = LinkConfig(mtu_bytes=128, arq="deferred", rto_s=1.0, nak_timeout_s=1.0)


def forged_hello(cfg: LinkConfig, epoch: int = 0xFFFF_FFFF) -> bytes:
    """14 bytes on a keyless CRC-32 link: anyone can make it (the FCS is public)."""
    return encode_frame(Frame(type=FrameType.HELLO, bundle_id=0, epoch=epoch, pn=0), cfg)


def run_link(s: Sender, r: Receiver, t0: float) -> list[BundleDelivered]:
    """Both ends with their timers, 0.25 s steps for up to 30 s, a lossless link."""
    events = exchange(s, r, t0, step_s=0.25, rounds=120, timers=True)[2]
    return [e for e in events if isinstance(e, BundleDelivered)]


def test_forged_epoch_2_32_minus_1_saved_in_the_window_recovers():
    """One 14-byte HELLO naming epoch 2^32-1 was accepted and saved in the ground's window,
    and every later frame of the real sender was dropped as stale, across restarts. Now the
    keyless window goes back to the real sender's epoch after a few of its long frames, also
    when the poisoned window was restored from disk."""
    cfg = DEFERRED_OPEN
    s, r = Sender(cfg, epoch=1_796_000_000), Receiver(cfg, epoch=50)
    s.submit(0, [b"first" * 40], 0.0)
    assert [e.bundle_id for e in run_link(s, r, 0.0)] == [0]
    hello = forged_hello(cfg)
    assert len(hello) == 14
    r.receive(hello, 31.0)
    assert r.replay_state.epoch == 0xFFFF_FFFF  # taken: it passed the (public) FCS
    saved = r.replay_state.to_bytes()
    r2 = Receiver(cfg, epoch=51, replay_state=ReplayState.from_bytes(saved))  # restarted
    s.submit(1, [b"second" * 40], 32.0)
    got = run_link(s, r2, 32.0)
    assert [(e.epoch, e.bundle_id) for e in got] == [(1_796_000_000, 1)]
    assert r2.replay_state.epoch == 1_796_000_000
    assert r2.stats.dropped_stale >= 2  # the frames it took to recover
    # and the sender's window over the ground, after a forged FIN/NAK epoch
    s.receive(encode_frame(Frame(type=FrameType.FIN, bundle_id=1, payload=bytes(4),
                                 epoch=0xFFFF_FFFF, pn=0), cfg), 70.0)  # fmt: skip
    s.submit(2, [b"third" * 40], 70.0)
    assert [e.bundle_id for e in run_link(s, r2, 70.0)] == [2]


def test_a_few_delayed_frames_of_the_previous_session_stay_stale():
    """Recovery needs rising packet numbers of one older epoch with nothing of the current
    epoch in between: a peer's last HELLO and EOF from before its restart stay stale."""
    cfg = DEFERRED_OPEN
    old = Sender(cfg, epoch=10)
    old.submit(0, [b"old" * 50], 0.0)
    old_frames = old.poll_transmit(0.0)
    longs = [f for f in old_frames if f[0] & 0x04]
    r = Receiver(cfg, epoch=1)
    new = Sender(cfg, epoch=11)
    new.submit(0, [b"new" * 50], 0.0)
    for f in new.poll_transmit(0.0):
        r.receive(f, 0.0)
    for f in longs[:2] + longs[:2]:  # delayed, then duplicated
        assert r.receive(f, 1.0) == []
    assert r.replay_state.epoch == 11 and r.stats.dropped_stale == 4


def test_a_keyed_window_never_goes_back():
    cfg = LinkConfig(mtu_bytes=128, auth_key=KEY, arq="deferred")
    old = Sender(cfg, epoch=10)
    r = Receiver(cfg, epoch=1)
    old.submit(0, [b"old" * 50], 0.0)
    recorded = old.poll_transmit(0.0)
    for f in recorded:
        r.receive(f, 0.0)
    new = Sender(cfg, epoch=11)
    new.submit(0, [b"new" * 50], 1.0)
    for f in new.poll_transmit(1.0):
        r.receive(f, 1.0)
    for t in range(10):  # the old session's long frames, replayed again and again
        old.handle_timeout(10.0 * (t + 1))
        for f in old.poll_transmit(10.0 * (t + 1)):
            assert r.receive(f, 2.0 + t) == []
    assert r.replay_state.epoch == 11
