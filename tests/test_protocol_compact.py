"""The compact frame header (protocol version 3): short and long forms, packet numbers
truncated on the air and rebuilt against the window (RFC 9000 A.3), HELLO frames, and the
drops of forged, truncated and version-2 frames."""

from __future__ import annotations

import binascii
import contextlib
import itertools
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textboost.protocol import (
    BundleDelivered,
    CorruptFrameError,
    Frame,
    FrameType,
    LinkConfig,
    ProtocolError,
    Receiver,
    ReplayState,
    SectionDelivered,
    Sender,
    decode_frame,
    encode_frame,
    frame_info,
)
from textboost.protocol.errors import AuthenticationError, UnsyncedFrameError, VersionError
from textboost.protocol.frames import Flag, reconstruct_pn, seal

pytestmark = pytest.mark.edge

KEY = bytes(range(32))
CFG = LinkConfig(mtu_bytes=64)
CFG_KEY = LinkConfig(mtu_bytes=64, auth_key=KEY, key_id=5, tag_bytes=8)


def test_rfc9000_a3_example_and_window_edges():
    # RFC 9000 A.3: largest 0xa82f30ea, 16-bit truncated 0x9b32 -> 0xa82f9b32
    assert reconstruct_pn(0x9B32, 0xA82F30EA) == 0xA82F9B32
    top = 100_000
    # expected = top + 1; numbers in (expected - 2^15, expected + 2^15] come back whole
    for pn in (top + 1, top + 32_769, top - 32_766, top - 1, top):
        assert reconstruct_pn(pn & 0xFFFF, top) == pn
    # one past an edge is read as the number one window away (and then fails FCS and tag)
    assert reconstruct_pn((top + 32_770) & 0xFFFF, top) == top + 32_770 - 65_536
    assert reconstruct_pn((top - 32_767) & 0xFFFF, top) == top - 32_767 + 65_536
    # the ends of the number space stay inside it
    assert reconstruct_pn(5, -1) == 5
    assert reconstruct_pn(0xFFFF, 0xFFFF_FFF0) == 0xFFFF_FFFF
    assert reconstruct_pn(0x0001, 0xFFFF_FFFE) == 0xFFFF_0001


@pytest.mark.parametrize("cfg", [CFG, CFG_KEY], ids=["open", "key"])
@pytest.mark.parametrize("ftype", list(FrameType))
def test_both_forms_round_trip_every_type(cfg, ftype):
    indexed = ftype in (FrameType.DATA, FrameType.PARITY)
    frame = Frame(
        type=ftype,
        bundle_id=300,
        segment=2 if indexed else 0,
        index=0x7FFF if indexed else 0,
        flags=Flag.LAST if ftype is FrameType.DATA else Flag.NONE,
        payload=b"" if ftype in (FrameType.EOF, FrameType.HELLO) else b"abc",
        epoch=77,
        pn=70_000,
    )
    long = encode_frame(frame, cfg, long=True)
    assert decode_frame(long, cfg) == frame
    info = frame_info(long)
    assert (info.type, info.bundle_id, info.retransmission) == (ftype, 300, False)
    short = encode_frame(frame, cfg, long=False)
    assert len(short) == len(long) - 6 - (cfg.auth_key is not None)
    if ftype is FrameType.HELLO:  # a HELLO exists to carry the epoch: never short
        with pytest.raises(ProtocolError, match="HELLO"):
            decode_frame(short, cfg, ReplayState(epoch=77, top=69_990))
        return
    assert decode_frame(short, cfg, ReplayState(epoch=77, top=69_990)) == frame
    assert frame_info(short).bundle_id == 300
    with pytest.raises(UnsyncedFrameError):
        decode_frame(short, cfg)  # no epoch held for this peer
    with pytest.raises(UnsyncedFrameError):
        decode_frame(short, cfg, ReplayState())
    # held under another epoch (the peer restarted): FCS and tag cover the implied epoch
    with pytest.raises((CorruptFrameError, AuthenticationError)):
        decode_frame(short, cfg, ReplayState(epoch=76, top=69_990))
    # beyond the half window: rebuilt as another number, which the FCS catches
    with pytest.raises(CorruptFrameError):
        decode_frame(short, cfg, ReplayState(epoch=77, top=70_000 - 40_000))


@pytest.mark.parametrize("bundle_id", [0, 127, 128, 16_383, 16_384, 2**28, 2**32 - 1])
def test_a_bundles_fragments_fill_the_mtu_whatever_its_id(bundle_id):
    cfg = LinkConfig(mtu_bytes=51, crc_bits=16)
    full = cfg.fragment_bytes(bundle_id)
    worst = Frame(type=FrameType.DATA, bundle_id=bundle_id, index=0x7FFF, payload=bytes(full))
    assert len(encode_frame(worst, cfg, long=False)) == 51
    usual = Frame(type=FrameType.DATA, bundle_id=bundle_id, index=40, payload=bytes(full))
    assert len(encode_frame(usual, cfg, long=False)) == 50  # a fragment index below 128
    s, r = Sender(cfg, epoch=1), Receiver(cfg, epoch=2)
    s.submit(bundle_id, [bytes(range(200)), b"tail"], 0.0)
    frames = s.poll_transmit(0.0)
    assert max(map(len, frames)) <= 51 and len(frames[1]) == 50  # HELLO, then DATA...
    events = [e for f in frames for e in r.receive(f, 0.0)]
    assert events[-1].sections == (bytes(range(200)), b"tail")


def test_version_2_frames_are_dropped_with_their_own_reason():
    # a version 2 DATA frame: 16-byte header, CRC-32 seeded with "TBL2"
    body = struct.pack(">BIBHII", 0x11, 1, 0, 0, 7, 0) + b"old payload"
    v2 = body + struct.pack(">I", zlib.crc32(body, zlib.crc32(b"TBL2")))
    with pytest.raises(VersionError, match="version"):
        decode_frame(v2, CFG)
    body16 = struct.pack(">BIBHII", 0x31, 1, 0, 0, 7, 0)
    v2_16 = body16 + struct.pack(">H", binascii.crc_hqx(body16, binascii.crc_hqx(b"TBL2", 0xFFFF)))
    with pytest.raises(VersionError):
        decode_frame(v2_16, LinkConfig(mtu_bytes=64, crc_bits=16))
    r, s = Receiver(CFG), Sender(CFG)
    assert r.receive(v2, 0.0) == [] and s.receive(v2, 0.0) == []
    assert r.stats.dropped_version == 1 and s.stats.dropped_version == 1
    (drop,) = r.take_drops()
    assert drop.reason == "version" and "version 3" in drop.detail


@pytest.mark.parametrize("cfg", [CFG, CFG_KEY], ids=["open", "key"])
def test_hello_before_each_bundle_until_the_receiver_echoes_the_epoch(cfg):
    s, r = Sender(cfg, epoch=3), Receiver(cfg, epoch=8)
    kinds = []
    for b in range(3):
        s.submit(b, [bytes([b]) * 100], float(b))
        frames = s.poll_transmit(float(b))
        kinds.append([frame_info(f).type for f in frames])
        for f in frames:
            r.receive(f, float(b))
        if b >= 1:  # the reverse link works from bundle 1 on
            for f in r.poll_transmit(float(b)):
                s.receive(f, float(b))
        else:
            r.poll_transmit(float(b))
    H, D, E = FrameType.HELLO, FrameType.DATA, FrameType.EOF
    assert kinds[0] == [H, D, D, D, E] and kinds[1] == [H, D, D, D, E]
    assert kinds[2] == [D, D, D, E]  # the FIN of bundle 1 echoed epoch 3: no HELLO, short EOF
    assert [f[0] & 0x04 != 0 for f in frames] == [False] * 4
    assert r.stats.frames_received == 14 and r.is_complete(2)


def test_a_lost_hello_costs_nothing_and_a_lost_sync_heals():
    cfg = LinkConfig(mtu_bytes=64, rto_s=1.0, nak_timeout_s=1.0)
    s, r = Sender(cfg, epoch=1), Receiver(cfg, epoch=2)
    s.submit(0, [b"q" * 150], 0.0)
    _hello, *rest = s.poll_transmit(0.0)
    for f in rest[:-1]:  # the HELLO is lost: the short DATA frames are held, not placed
        assert r.receive(f, 0.0) == []
    assert r.stats.frames_received == 0 and r.take_drops() == []
    events = r.receive(rest[-1], 0.0)  # the EOF (long: not yet echoed) gives the epoch
    assert r.is_complete(0) and type(events[-1]).__name__ == "BundleDelivered"
    for f in r.poll_transmit(0.0):  # a FIN, no NAK round
        s.receive(f, 0.0)
    assert not s.active_bundles

    # Now confirmed (short frames only). The receiver loses 70 000 frames in a row (the
    # sender's numbers jump past the 16-bit window): its short frames no longer fit,
    # until the EOF re-sent after silence, in the long form, brings the numbers back.
    s._pn += 70_000
    s._sync_pn = s._pn  # (the sender heard nothing to doubt the sync)
    s.submit(1, [b"w" * 150], 1.0)
    frames = s.poll_transmit(1.0)
    assert frame_info(frames[0]).type is FrameType.DATA
    for f in frames:
        assert r.receive(f, 1.0) == []
    assert r.stats.dropped_corrupt == len(frames)  # numbers rebuilt wrong: FCS fails
    s.handle_timeout(2.5)
    (eof,) = s.poll_transmit(2.5)
    assert eof[0] & 0x04  # long form
    r.receive(eof, 2.5)
    t = 2.5
    while s.active_bundles and t < 20:
        for f in r.poll_transmit(t):
            s.receive(f, t)
        t += 0.5
        for f in s.poll_transmit(t):
            r.receive(f, t)
        s.handle_timeout(t)
        r.handle_timeout(t)
    assert r.is_complete(1) and not s.active_bundles


def test_a_lost_hello_holds_the_words_only_until_the_picture():
    """Until the echo a HELLO goes before a bundle's words and again before the rest of it,
    and every 16 frames: the first one lost, the words are read when the second comes (a
    LoRa-sized link, whose deferred NAK or FIN, the echo, comes only after the picture)."""
    cfg = LinkConfig(mtu_bytes=51, crc_bits=16, policy="words_first")
    s, r = Sender(cfg, epoch=1), Receiver(cfg, epoch=2)
    sections = [bytes(range(150)), bytes(900), bytes(300)]
    s.submit(0, sections, 0.0)
    frames = s.poll_transmit(0.0)
    peer = ReplayState(epoch=1, top=0)
    kinds = [decode_frame(f, cfg, peer) for f in frames]
    hellos = [i for i, k in enumerate(kinds) if k.type is FrameType.HELLO]
    first_picture = next(i for i, k in enumerate(kinds) if k.segment == 1)
    assert hellos[:2] == [0, first_picture - 1]  # before the words, before the picture
    assert max(b - a for a, b in itertools.pairwise([*hellos, len(frames)])) <= 17
    words_at = None
    for i, f in enumerate(frames[1:], 1):  # the first HELLO is lost
        for e in r.receive(f, 0.0):
            if isinstance(e, SectionDelivered) and e.index == 0 and words_at is None:
                words_at = i
    assert words_at == hellos[1] and r.is_complete(0)


def test_forged_short_frames_cannot_move_the_window():
    s, r = Sender(CFG_KEY, epoch=1), Receiver(CFG_KEY, epoch=2)
    s.submit(0, [b"x" * 30], 0.0)
    hello, data, eof = s.poll_transmit(0.0)
    r.receive(hello, 0.0)
    top = r.replay_state.top
    for pn16 in (0x0000, 0x4000, 0x8000, 0xFFFF):  # the forger knows no key
        forged = bytes([0x30]) + pn16.to_bytes(2, "big") + b"\x00\x00\x00evil"
        forged = seal(forged, LinkConfig(mtu_bytes=64, auth_key=bytes(32)), 1, pn16)
        assert r.receive(forged, 0.0) == []
    assert r.replay_state.top == top and r.stats.dropped_auth == 4
    assert [type(e).__name__ for f in (data, eof) for e in r.receive(f, 0.0)] == [
        "SectionDelivered",
        "BundleDelivered",
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.binary(min_size=1, max_size=64),
    st.sampled_from([CFG, CFG_KEY]),
    st.one_of(
        st.none(), st.builds(ReplayState, st.integers(0, 2**32 - 1), st.integers(-1, 2**32 - 1))
    ),
)
def test_fuzz_compact_headers_raise_only_protocol_errors(data, cfg, peer):
    """Arbitrary bytes, and the same bytes sealed with a valid FCS and tag for the held
    epoch (an insider's worst), decode or raise a protocol error: never anything else."""
    with contextlib.suppress(ProtocolError):
        decode_frame(data, cfg, peer)
    epoch, top = (peer.epoch, peer.top) if peer is not None else (0, -1)
    pn = reconstruct_pn(int.from_bytes(data[1:3].ljust(2, b"\0"), "big"), top)
    with contextlib.suppress(ProtocolError):
        frame = decode_frame(seal(data, cfg, epoch, pn), cfg, peer)
        assert frame.pn <= 0xFFFF_FFFF and frame.index < 0x8000


def test_one_way_link_survives_the_loss_of_its_first_hello():
    """No echo ever comes on a one-way link: a HELLO opens every bundle and comes again
    every 16 frames, and short frames before the first one that arrives are held."""
    cfg = LinkConfig(mtu_bytes=64, arq="none", fec_k=4, fec_m=1)
    s, r = Sender(cfg, epoch=1), Receiver(cfg, epoch=2)
    data = bytes(range(256)) * 6  # about 30 frames
    s.submit(0, [data[:40], data], 0.0)
    frames = s.poll_transmit(0.0)
    hellos = [i for i, f in enumerate(frames) if frame_info(f).type is FrameType.HELLO]
    assert hellos[0] == 0 and len(hellos) >= 2 and hellos[1] <= 17
    events = [e for f in frames[1:] for e in r.receive(f, 0.0)]  # the first HELLO is lost
    assert [e.sections for e in events if isinstance(e, BundleDelivered)] == [(data[:40], data)]
    assert r.stats.dropped_stale == 0


def test_frames_held_for_an_unknown_epoch_are_bounded():
    r = Receiver(CFG, epoch=2)
    for k in range(100):  # short frames of a forger, no HELLO: at most 32 are kept
        forged = seal(bytes([0x30]) + k.to_bytes(2, "big") + b"\x00\x00\x00junk", CFG, 1, k)
        assert r.receive(forged, 0.0) == []
    assert len(r._unsynced) == 32 and r.stats.dropped_stale == 68
    assert all("pushed out" in d.detail for d in r.take_drops())
    s = Sender(CFG, epoch=1)  # the genuine sender's HELLO: the held frames are read again
    s.submit(0, [b"ok"], 0.0)
    events = [e for f in s.poll_transmit(0.0) for e in r.receive(f, 0.0)]
    assert [e.sections for e in events if isinstance(e, BundleDelivered)] == [(b"ok",)]
    assert not r._unsynced and r.stats.dropped_malformed + r.stats.dropped_replay >= 1
