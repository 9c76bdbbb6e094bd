"""Framing, CRC, authentication, payload codecs and config validation of textboost.protocol."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textboost.protocol import (
    HEADER_BYTES,
    AuthenticationError,
    CorruptFrameError,
    Frame,
    FrameError,
    FrameType,
    LinkConfig,
    LocalProtocolError,
    ProtocolError,
    Receiver,
    ReplayState,
    Sender,
    StreamDeframer,
    decode_frame,
    encode_frame,
    slip_encode,
)
from textboost.protocol.frames import (
    PN_SEGMENT,
    Descriptor,
    Flag,
    NakRange,
    decode_nak,
    encode_nak,
    seal,
)

pytestmark = pytest.mark.edge

CFG = LinkConfig(mtu_bytes=64)
KEY = bytes(range(32))


def test_header_is_at_most_eleven_bytes_and_overhead_is_reported():
    # short form: type/flags | packet number u16 | bundle id varint <= 5 | segment | index <= 2
    assert HEADER_BYTES == 11
    cfg = LinkConfig(mtu_bytes=256)
    assert cfg.frame_overhead_bytes == 11 == cfg.data_overhead_bytes(127)  # 7 + CRC-32
    assert cfg.data_overhead_bytes(128) == 12 and cfg.data_overhead_bytes(2**32 - 1) == 15
    assert LinkConfig(mtu_bytes=51, crc_bits=16).frame_overhead_bytes == 9
    # with a key: + tag (the key id travels only in the long form)
    assert LinkConfig(mtu_bytes=51, auth_key=KEY, tag_bytes=4).frame_overhead_bytes == 15
    # LoRa SF12: 51-byte payloads carry 42 bytes of section data with CRC-16 (bundle ids
    # below 128; 38 at the largest ids).
    lora = LinkConfig(mtu_bytes=51, crc_bits=16)
    assert lora.fragment_payload_bytes == 42 and lora.fragment_bytes(2**32 - 1) == 38
    assert cfg.nominal_efficiency == pytest.approx(245 / 256)


@pytest.mark.parametrize("crc_bits", [16, 32])
@pytest.mark.parametrize("key", [None, KEY])
def test_frame_round_trip(crc_bits, key):
    cfg = LinkConfig(mtu_bytes=64, crc_bits=crc_bits, auth_key=key)
    frame = Frame(
        type=FrameType.DATA,
        bundle_id=70_000,
        segment=3,
        index=700,
        flags=Flag.LAST,
        payload=b"xyz",
        epoch=0xDEADBEEF,
        pn=123_456,
    )
    tag = cfg.tag_bytes if key else 0
    data = encode_frame(frame, cfg)  # long form: 1 + epoch 4 [+ key id] + pn 4, id 3, 1 + 2
    assert len(data) == 1 + 4 + (key is not None) + 4 + 3 + 1 + 2 + 3 + tag + crc_bits // 8
    assert decode_frame(data, cfg) == frame
    short = encode_frame(frame, cfg, long=False)  # pn u16 instead of epoch and pn
    assert len(short) == len(data) - 6 - (key is not None)
    peer = ReplayState(epoch=0xDEADBEEF, top=123_400)
    assert decode_frame(short, cfg, peer) == frame


def test_frame_must_fit_mtu():
    with pytest.raises(FrameError, match="length"):
        encode_frame(Frame(type=FrameType.DATA, bundle_id=0, payload=bytes(60)), CFG)


def test_every_single_bit_flip_is_detected():
    data = encode_frame(Frame(type=FrameType.DATA, bundle_id=7, payload=b"hello"), CFG)
    for bit in range(len(data) * 8):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(CorruptFrameError):  # the sender's epoch known: short parses
            decode_frame(bytes(bad), CFG, ReplayState(epoch=0, top=0))


def test_fields_are_named_in_errors():
    body = struct.pack(">BIIB", 0xE4, 0, 0, 1)  # type 7 does not exist
    with pytest.raises(FrameError, match="type") as info:
        decode_frame(seal(body, CFG), CFG)
    assert info.value.field == "type" and info.value.value == 7
    body = struct.pack(">BIIB", 0x65, 0, 0, 1)  # the reserved bit set
    with pytest.raises(FrameError, match="reserved"):
        decode_frame(seal(body, CFG), CFG)
    with pytest.raises(CorruptFrameError, match="length"):
        decode_frame(b"\x10\x00", CFG)


def test_hmac_rejects_tampering_and_wrong_key():
    cfg = LinkConfig(mtu_bytes=64, auth_key=KEY)
    frame = Frame(type=FrameType.DATA, bundle_id=1, payload=b"launch code")
    data = bytearray(encode_frame(frame, cfg))
    # An attacker who rewrites payload and recomputes the (public) CRC is still caught.
    data[-4 - cfg.tag_bytes - 1] ^= 0xFF
    body = bytes(data[:-4])
    with pytest.raises(AuthenticationError):
        decode_frame(seal(body, LinkConfig(mtu_bytes=64)), cfg)
    other = LinkConfig(mtu_bytes=64, auth_key=bytes(32))
    with pytest.raises(AuthenticationError):
        decode_frame(encode_frame(frame, other), cfg)
    with pytest.raises(LocalProtocolError, match="auth_key"):
        LinkConfig(auth_key=b"short")


def test_receiver_counts_and_drops_bad_frames():
    cfg = LinkConfig(mtu_bytes=64, auth_key=KEY)
    r = Receiver(cfg)
    good = Sender(cfg)
    good.submit(1, [b"abc"], 0.0)
    forged = Sender(LinkConfig(mtu_bytes=64, auth_key=bytes(32)))
    forged.submit(1, [b"evil"], 0.0)
    forged_frames = forged.poll_transmit(0.0)
    for f in forged_frames:
        assert r.receive(f, 0.0) == []
    frames = good.poll_transmit(0.0)
    assert r.receive(frames[0][:-1] + bytes([frames[0][-1] ^ 1]), 0.0) == []
    events = [e for f in frames for e in r.receive(f, 0.0)]
    # HELLO and EOF of the forger fail the tag; its short DATA frame is held until the
    # genuine HELLO gives an epoch, then fails the tag too
    assert len(forged_frames) == 3 and r.stats.dropped_corrupt == 1
    assert r.stats.dropped_auth == 3 and r.stats.dropped_stale == 0
    assert [type(e).__name__ for e in events] == ["SectionDelivered", "BundleDelivered"]
    assert events[-1].sections == (b"abc",)


@pytest.mark.parametrize("crc_bits", [16, 32])
def test_descriptor_and_nak_round_trip_and_errors(crc_bits):
    sections = [b"", b"a" * 300, b"b"]
    for classes in ([0, 1, 2], [0, 1, 1]):  # implicit classes cost no bytes
        d = Descriptor.of(sections, classes, crc_bits)
        raw = d.to_bytes(crc_bits)
        assert len(raw) == 2 + 4 + 3 * crc_bits // 8 + (0 if classes == [0, 1, 2] else 3)
        assert Descriptor.parse_prefix(raw + b"more", crc_bits) == (d, len(raw))
        assert all(Descriptor.parse_prefix(raw[:k], crc_bits) is None for k in range(len(raw)))
    with pytest.raises(FrameError, match=r"descriptor\.n_sections"):
        Descriptor.parse_prefix(b"\0\0", crc_bits)
    with pytest.raises(FrameError, match=r"descriptor\.classes"):
        Descriptor.parse_prefix(b"\1\7", crc_bits)
    ranges = [NakRange(s, 10 * s, s % 3) for s in range(40)]
    payloads = encode_nak(ranges, 20)
    assert all(len(p) <= 20 for p in payloads)
    assert [r for p in payloads for r in decode_nak(p)] == ranges
    with pytest.raises(FrameError, match=r"nak\.start"):
        decode_nak(b"\x01\x80")
    # packet-number ranges: any packet number, 1..65536 of them
    pns = [NakRange(PN_SEGMENT, 0xFFFF_FFFF, 1), NakRange(PN_SEGMENT, 70_000, 1 << 16)]
    assert decode_nak(b"".join(r.to_bytes() for r in pns)) == pns
    for bad in (NakRange(PN_SEGMENT, 5, 0), NakRange(PN_SEGMENT, 5, (1 << 16) + 1),
                NakRange(PN_SEGMENT, 1 << 32, 1)):  # fmt: skip
        with pytest.raises(FrameError, match=r"nak\.packets"):
            decode_nak(bad.to_bytes())


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mtu_bytes": 12}, "mtu_bytes"),
        ({"arq": "sometimes"}, "arq"),
        ({"policy": "lifo"}, "policy"),
        ({"crc_bits": 8}, "crc_bits"),
        ({"fec_k": 4}, "fec_k"),
        ({"fec_k": 250, "fec_m": 10}, "fec_k"),
        ({"rto_s": 0}, "rto_s"),
    ],
)
def test_config_errors_name_the_field(kwargs, field):
    with pytest.raises(LocalProtocolError, match=field):
        LinkConfig(**kwargs)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_fuzz_decode_raises_only_protocol_errors(data):
    with contextlib.suppress(ProtocolError):
        decode_frame(data, CFG)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=16, max_size=60), st.sampled_from([None, KEY]))
def test_fuzz_receiver_and_sender_never_crash_on_checked_frames(body, key):
    """Frames with a valid FCS (and tag) but arbitrary content reach the parsers past the
    CRC; both ends must count and drop, never raise."""
    cfg = LinkConfig(mtu_bytes=64, auth_key=key, fec_k=2, fec_m=1)
    data = seal(body, cfg, 0, 5)
    r, s = Receiver(cfg), Sender(cfg)
    r.receive(encode_frame(Frame(type=FrameType.HELLO, bundle_id=0, pn=4), cfg), 0.0)
    s.submit(0, [b"x" * 100], 0.0)
    s.poll_transmit(0.0)
    r.receive(data, 0.0)
    s.receive(data, 0.0)
    r.handle_timeout(1e9)
    s.handle_timeout(1e9)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=50), max_size=8), st.data())
def test_slip_stream_any_chunking(frames, data):
    frames = [f for f in frames if f]
    stream = b"".join(slip_encode(f) for f in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    d = StreamDeframer(max_frame_bytes=64)
    got = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += d.feed(stream[a:b])
    assert got == frames


def test_slip_byte_at_a_time_equals_all_at_once_and_resyncs():
    frames = [bytes([0xC0, 0xDB, 1, 2]), b"plain", bytes(range(256))[:60]]
    stream = b"garbage\xdb\x01" + b"".join(slip_encode(f) for f in frames)
    one = StreamDeframer(64)
    byte_wise = [f for b in stream for f in one.feed(bytes([b]))]
    assert byte_wise == StreamDeframer(64).feed(stream) == frames
    assert one.dropped == 1  # the garbage before the first END
    long = StreamDeframer(8)
    assert long.feed(slip_encode(bytes(20)) + slip_encode(b"ok")) == [b"ok"]
    assert long.dropped == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60))
def test_fuzz_payload_parsers_raise_only_frame_errors(data):
    for parse in (lambda d: Descriptor.parse_prefix(d, 32), decode_nak):
        with contextlib.suppress(FrameError):
            parse(data)
