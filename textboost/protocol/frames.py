"""Frame layout, frame check sequence, authentication tag, and the small payload codecs.

Every frame, protocol version 3 (big-endian; the *compact* header)::

    byte 0       type (bits 7-5: DATA 1 .. HELLO 6) | LAST 0x10 | RETX 0x08 | LONG 0x04 |
                 KEYED 0x02 (a key id follows the epoch) | 0x01 reserved (0)
    long form    epoch u32 | [key id u8] | packet number u32
    short form   packet number, low 16 bits (u16): the epoch is the one the other end
                 holds for this peer, the full number is rebuilt against its window
    bundle id    varint (LEB128, 1..5 bytes; scoped by the epoch of the bundle's sender)
    DATA, PARITY segment u8 | fragment (DATA) or FEC group (PARITY) index: one byte below
                 0x80, else u16 with the top bit set (indices 0..32767)
    payload      up to MTU - overhead bytes
    tag          truncated HMAC-SHA256 over protocol id | epoch u32 | packet number u32 |
                 key id u8 | everything before (only with a key)
    FCS          CRC-32 or CRC-16/CCITT over epoch u32 | packet number u32 | everything before

The tag and the FCS cover the *full* epoch and packet number, sent or implied, so a short
frame rebuilt with the wrong epoch or number fails them like a forged or damaged one.

Each end stamps its frames with its own epoch and a packet number that grows by one per
frame (re-sent frames get new numbers), so the other end's :class:`ReplayWindow` drops
any frame it has accepted before, any frame older than its window, and any frame of an
older epoch. The packet number is truncated as QUIC does (RFC 9000 §17.1, A.3): the
receiver takes the value nearest to one above the highest number it accepted, so a short
frame decodes correctly while fewer than 32 768 frames in a row are lost or reordered. A
sender uses the long form (epoch and full number) for its HELLO frames (until the other end
has echoed its epoch, which one-way links never do, one before each bundle's segment 0, one
before its other segments and one every 16 frames; after it, every 16 384 frames without
news) and for EOFs that are re-sent or sent
before that echo; the receiver sends all its NAKs and FINs in the long form. A lost sync
therefore heals at the next long frame, and a receiver holds the short frames that came
before the first long one and reads them then.

The CRC registers start from a protocol-specific seed, so frames of another protocol (or
another version of this one) fail the check instead of being misread; a frame that passes
the version 2 check is dropped with reason ``version``.

A bundle is sent as byte *segments*: segment 0 opens with the bundle's descriptor, and
each segment carries consecutive sections back to back (``policy="fifo"``: the whole
bundle is one segment; ``"priority_interleave"``: one segment per priority class;
``"words_first"``: class 0 and the rest), so small
sections share frames instead of each paying a frame header.

Frame types: DATA (a fragment of a segment), PARITY (FEC parity over a group of DATA
frames), EOF (the sender finished its first pass over a bundle; prompts NAK or FIN),
NAK (receiver: the bundle's epoch, then ranges of missing fragments, or with the segment
byte ``PN_SEGMENT`` ranges of the sender's packet numbers that never arrived), FIN (receiver: the
bundle's epoch; bundle complete), HELLO (sender, long form, no payload: announces its epoch
and packet number before the bundle it names).
"""

from __future__ import annotations

import binascii
import hmac
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from textboost.bitstream.varint import varint
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
    FrameError,
    UnsyncedFrameError,
    VersionError,
)
from textboost.protocol.replay import ReplayState

__all__ = [
    "PN_SEGMENT",
    "Descriptor",
    "Flag",
    "Frame",
    "FrameInfo",
    "FrameType",
    "NakRange",
    "decode_feedback",
    "decode_frame",
    "decode_nak",
    "encode_feedback",
    "encode_frame",
    "encode_nak",
    "frame_info",
    "reconstruct_pn",
    "seal",
]

MAX_SECTIONS = 255  # sections 0..254 per bundle
MAX_SECTION_BYTES = 1 << 24
PN_SHORT_BITS = 16  # packet number bits in a short-form frame
_PROTOCOL_ID = b"TBL3"  # seeds both CRCs: frames of other protocols/versions fail the FCS
_CRC32_SEED = zlib.crc32(_PROTOCOL_ID)
_CRC16_SEED = binascii.crc_hqx(_PROTOCOL_ID, 0xFFFF)
_V2_CRC32_SEED = zlib.crc32(b"TBL2")  # only to name version 2 frames when they are dropped
_V2_CRC16_SEED = binascii.crc_hqx(b"TBL2", 0xFFFF)
_LONG, _KEYED, _RESERVED = 0x04, 0x02, 0x01
_U32 = struct.Struct(">I")
_PSEUDO = struct.Struct(">II")  # epoch, packet number: covered by FCS and tag, sent or not


class FrameType(IntEnum):
    DATA = 1
    PARITY = 2
    EOF = 3
    NAK = 4
    FIN = 5
    HELLO = 6


class Flag(IntFlag):
    NONE = 0
    LAST = 1  # DATA: the last fragment of its segment
    RETX = 2  # DATA/PARITY/EOF: a retransmission (no new information about gaps)


_KNOWN_FLAGS = int(Flag.LAST | Flag.RETX)
_INDEXED = (FrameType.DATA, FrameType.PARITY)


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """One decoded frame (payload excludes header, key id, tag and FCS). ``epoch`` and
    ``pn`` (packet number) are those of the end that sent the frame, in full (rebuilt for
    a short-form frame)."""

    type: FrameType
    bundle_id: int
    segment: int = 0
    index: int = 0
    flags: Flag = Flag.NONE
    payload: bytes = b""
    epoch: int = 0
    pn: int = 0

    def __post_init__(self) -> None:
        for name, value, top in (
            ("bundle_id", self.bundle_id, MAX_BUNDLE_ID),
            ("segment", self.segment, 0xFF),
            ("index", self.index, MAX_FRAGMENTS - 1),
            ("epoch", self.epoch, MAX_EPOCH),
            ("pn", self.pn, MAX_PACKET_NUMBER),
        ):
            if not 0 <= value <= top:
                raise FrameError(name, value, f"0..{top}")


def _fcs(pseudo: bytes, body: bytes, crc_bits: int) -> bytes:
    if crc_bits == 32:
        return _U32.pack(zlib.crc32(body, zlib.crc32(pseudo, _CRC32_SEED)))
    return struct.pack(">H", binascii.crc_hqx(body, binascii.crc_hqx(pseudo, _CRC16_SEED)))


def _is_v2(data: bytes, crc_bits: int) -> bool:
    """Does ``data`` carry a valid protocol version 2 FCS (seeded with ``TBL2``)?"""
    body, fcs = data[: -crc_bits // 8], data[-crc_bits // 8 :]
    if crc_bits == 32:
        return _U32.pack(zlib.crc32(body, _V2_CRC32_SEED)) == fcs
    return struct.pack(">H", binascii.crc_hqx(body, _V2_CRC16_SEED)) == fcs


def _tag(key: bytes, pseudo: bytes, key_id: int, body: bytes, n: int) -> bytes:
    return hmac.new(key, _PROTOCOL_ID + pseudo + bytes([key_id]) + body, "sha256").digest()[:n]


def _index_bytes(i: int) -> bytes:
    return bytes([i]) if i < 0x80 else (0x8000 | i).to_bytes(2, "big")


def reconstruct_pn(truncated: int, largest: int, bits: int = PN_SHORT_BITS) -> int:
    """The full packet number nearest to ``largest + 1`` whose low ``bits`` bits are
    ``truncated`` (RFC 9000, appendix A.3), kept within 0..MAX_PACKET_NUMBER."""
    expected = largest + 1
    win = 1 << bits
    hwin, mask = win // 2, win - 1
    candidate = (expected & ~mask) | truncated
    if candidate <= expected - hwin and candidate + win <= MAX_PACKET_NUMBER:
        return candidate + win
    if (candidate > expected + hwin or candidate > MAX_PACKET_NUMBER) and candidate >= win:
        return candidate - win
    return candidate


def encode_frame(frame: Frame, config: LinkConfig, *, long: bool | None = None) -> bytes:
    """Serialize ``frame`` with tag and FCS.

    Args:
        long: the long form (epoch and full packet number on the air) or the short one
            (low 16 bits of the packet number; the receiver must hold the epoch and be
            within 32 768 frames). None: long if it fits the MTU.
    Returns:
        The frame bytes, at most ``config.mtu_bytes`` long.
    Raises:
        FrameError: the payload does not fit the MTU.
    """
    if long is None:
        try:
            return encode_frame(frame, config, long=True)
        except FrameError:
            return encode_frame(frame, config, long=False)
    keyed = config.auth_key is not None
    head = bytearray([(int(frame.type) << 5) | (int(frame.flags) << 3)])
    if long:
        head[0] |= _LONG | (_KEYED if keyed else 0)
        head += _U32.pack(frame.epoch)
        if keyed:
            head.append(config.key_id)
        head += _U32.pack(frame.pn)
    else:
        head += (frame.pn & 0xFFFF).to_bytes(2, "big")
    head += varint(frame.bundle_id)
    if frame.type in _INDEXED:
        head.append(frame.segment)
        head += _index_bytes(frame.index)
    out = seal(bytes(head) + frame.payload, config, frame.epoch, frame.pn)
    if len(out) > config.mtu_bytes:
        raise FrameError("length", len(out), f"at most mtu_bytes={config.mtu_bytes}")
    return out


def seal(
    body: bytes, config: LinkConfig, epoch: int | None = None, pn: int | None = None
) -> bytes:
    """``body`` (header and payload) with its tag (with a key) and FCS: what
    :func:`encode_frame` appends, and what an attacker holding the key could compute for
    bytes of their own (the fuzz tests). ``epoch``/``pn`` None: read from a long header."""
    if epoch is None or pn is None:
        h = _split_header(body, FrameError)
        if not h.long:
            raise FrameError("form", "short", "epoch and pn given for a short header")
        epoch, pn = h.epoch, h.pn
    pseudo = _PSEUDO.pack(epoch, pn)
    if config.auth_key is not None:
        body += _tag(config.auth_key, pseudo, config.key_id, body, config.tag_bytes)
    return body + _fcs(pseudo, body, config.crc_bits)


@dataclass(frozen=True, slots=True)
class _Header:
    type_flags: int
    long: bool
    epoch: int | None  # None: short form
    key_id: int | None
    pn: int  # as on the air (16 bits in the short form)
    end: int  # offset after the packet number


def _split_header(data: bytes, ctx_error: type[FrameError]) -> _Header:
    """Byte 0 and the epoch / key id / packet number part (bounds-checked)."""
    if not data:
        raise ctx_error("length", 0, "at least 1 byte")
    b0 = data[0]
    if b0 & _LONG:
        keyed = bool(b0 & _KEYED)
        end = 1 + 4 + keyed + 4
        if len(data) < end:
            raise ctx_error("length", len(data), f"at least {end} bytes (long header)")
        epoch = _U32.unpack_from(data, 1)[0]
        key_id = data[5] if keyed else None
        return _Header(b0, True, epoch, key_id, _U32.unpack_from(data, 5 + keyed)[0], end)
    if len(data) < 3:
        raise ctx_error("length", len(data), "at least 3 bytes (short header)")
    return _Header(b0, False, None, None, int.from_bytes(data[1:3], "big"), 3)


def _read_index(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise FrameError("index", data[pos:].hex(), "an index byte")
    if data[pos] < 0x80:
        return data[pos], pos + 1
    if pos + 2 > len(data):
        raise FrameError("index", data[pos:].hex(), "a two-byte index")
    return int.from_bytes(data[pos : pos + 2], "big") & 0x7FFF, pos + 2


def decode_frame(data: bytes, config: LinkConfig, peer: ReplayState | None = None) -> Frame:
    """Check and parse one frame.

    Args:
        peer: what this end holds about the frame's sender (its :class:`ReplayWindow`
            state): the epoch and the highest packet number accepted, which a short-form
            frame needs. None: only long-form frames decode.
    Returns:
        The :class:`Frame`, with the full epoch and packet number.
    Raises:
        CorruptFrameError: too short, or the FCS does not match.
        VersionError: a frame of protocol version 2 (its FCS checks with that version's seed).
        UnsyncedFrameError: a short-form frame and no epoch of its sender known yet.
        AuthenticationError: the HMAC tag does not match, or the frame names another key.
        FrameError: a field outside its allowed values (type, flags, length).
        Any other exception is a bug. Replay checks are the caller's (:class:`ReplayWindow`).
    """
    data = bytes(data)
    keyed = config.auth_key is not None
    tag_n = config.tag_bytes if keyed else 0
    min_len = 3 + tag_n + config.crc_bytes
    if len(data) < min_len:
        raise CorruptFrameError("length", len(data), f"at least {min_len} bytes")
    if len(data) > config.mtu_bytes:
        raise FrameError("length", len(data), f"at most mtu_bytes={config.mtu_bytes}")
    body, fcs = data[: -config.crc_bytes], data[-config.crc_bytes :]
    try:
        h = _split_header(body, CorruptFrameError)
    except CorruptFrameError:
        if _is_v2(data, config.crc_bits):
            raise VersionError() from None
        raise
    if h.long:
        epoch, pn = h.epoch, h.pn
    elif peer is None or peer.epoch is None:
        if _is_v2(data, config.crc_bits):
            raise VersionError()
        raise UnsyncedFrameError()
    else:
        epoch, pn = peer.epoch, reconstruct_pn(h.pn, peer.top)
    pseudo = _PSEUDO.pack(epoch, pn)
    if _fcs(pseudo, body, config.crc_bits) != fcs:
        if _is_v2(data, config.crc_bits):
            raise VersionError()
        what = "" if h.long else f" (epoch {epoch} and packet {pn} implied)"
        raise CorruptFrameError("FCS", fcs.hex(), f"CRC-{config.crc_bits} of the frame{what}")
    if keyed:
        body, tag = body[:-tag_n], body[-tag_n:]
        if h.end > len(body):
            raise FrameError("length", len(data), "room for the header before the tag")
        key_id = config.key_id if h.key_id is None else h.key_id
        if not hmac.compare_digest(_tag(config.auth_key, pseudo, key_id, body, tag_n), tag):
            raise AuthenticationError("tag", tag.hex(), "HMAC-SHA256 under the shared key")
        if h.long and h.key_id is None:
            raise AuthenticationError("key id", None, f"{config.key_id} (long form, keyed)")
        if key_id != config.key_id:
            raise AuthenticationError("key id", key_id, f"{config.key_id}")
    elif h.key_id is not None:
        raise FrameError("key id", h.key_id, "none (this link has no key)")
    if h.type_flags & _RESERVED:
        raise FrameError("reserved bit", 1, "0")
    try:
        ftype = FrameType(h.type_flags >> 5)
    except ValueError:
        raise FrameError(
            "type", h.type_flags >> 5, "1..6 (DATA PARITY EOF NAK FIN HELLO)"
        ) from None
    flags = (h.type_flags >> 3) & 0x03
    if ftype is FrameType.HELLO and not h.long:
        raise FrameError("HELLO form", "short", "the long form")
    bundle_id, pos = _read_varint(body, h.end, "bundle id")
    segment = index = 0
    if ftype in _INDEXED:
        if pos >= len(body):
            raise FrameError("segment", body[pos:].hex(), "a segment byte")
        segment = body[pos]
        index, pos = _read_index(body, pos + 1)
    return Frame(
        type=ftype,
        bundle_id=bundle_id,
        segment=segment,
        index=index,
        flags=Flag(flags),
        payload=body[pos:],
        epoch=epoch,
        pn=pn,
    )


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """What a driver may want to know of a frame its end just sent (for timing and
    accounting), without knowing the frame layout."""

    type: FrameType
    bundle_id: int
    retransmission: bool  # DATA/PARITY/EOF re-sent: carries nothing new


def frame_info(data: bytes) -> FrameInfo:
    """The header fields of a frame :func:`encode_frame` made at this end (the sender's
    own output: no FCS or tag check; use :func:`decode_frame` for received frames). A HELLO
    names the bundle it precedes."""
    h = _split_header(data, FrameError)
    bundle_id, _ = _read_varint(data, h.end, "bundle id")
    retx = bool((h.type_flags >> 3) & Flag.RETX)
    return FrameInfo(FrameType(h.type_flags >> 5), bundle_id, retx)


# --- varints (unsigned LEB128), for descriptors and NAK ranges -----------------------------




class _Truncated(FrameError):
    """A varint cut off by the end of the data (more bytes may still come)."""


def _read_varint(data: bytes, pos: int, field: str) -> tuple[int, int]:
    value = shift = 0
    for i in range(5):
        if pos + i >= len(data):
            raise _Truncated(field, data[pos:].hex(), "a complete varint")
        b = data[pos + i]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos + i + 1
        shift += 7
    raise FrameError(field, data[pos : pos + 5].hex(), "a varint of at most 5 bytes")


# --- bundle descriptor ---------------------------------------------------------------------


def section_check(data: bytes, crc_bits: int) -> int:
    """The per-section check value: CRC-32, or CRC-16/CCITT on CRC-16 links."""
    return zlib.crc32(data) if crc_bits == 32 else binascii.crc_hqx(data, 0xFFFF)


@dataclass(frozen=True, slots=True)
class Descriptor:
    """What a receiver needs to cut a bundle into sections and verify them: per section its
    length, priority class and check value (CRC-32, or CRC-16 when the link uses CRC-16
    frames). It opens segment 0 of the bundle, so it shares frames with section data.

    Layout: n_sections u8 | classes u8 (0: class = section index, 1: explicit) | per
    section: length varint [| class u8] | check (4 or 2 bytes, big-endian).
    """

    lengths: tuple[int, ...]
    classes: tuple[int, ...]
    checks: tuple[int, ...]

    @classmethod
    def of(cls, sections: list[bytes], classes: list[int], crc_bits: int) -> Descriptor:
        return cls(
            tuple(len(s) for s in sections),
            tuple(classes),
            tuple(section_check(s, crc_bits) for s in sections),
        )

    def to_bytes(self, crc_bits: int) -> bytes:
        explicit = list(self.classes) != [min(i, 254) for i in range(len(self.classes))]
        out = bytearray([len(self.lengths), int(explicit)])
        fmt = ">I" if crc_bits == 32 else ">H"
        for length, klass, check in zip(self.lengths, self.classes, self.checks, strict=True):
            out += varint(length)
            if explicit:
                out.append(klass)
            out += struct.pack(fmt, check)
        return bytes(out)

    @classmethod
    def parse_prefix(
        cls, data: bytes, crc_bits: int, max_total: int = MAX_SECTIONS * MAX_SECTION_BYTES
    ) -> tuple[Descriptor, int] | None:
        """Parse a descriptor from the start of ``data``; the sections may claim at most
        ``max_total`` bytes together (the link's ``max_bundle_bytes``).

        Returns:
            (descriptor, bytes it took), or None if ``data`` ends before the descriptor does.
        Raises:
            FrameError: naming the descriptor field that is malformed.
        """
        if len(data) < 2:
            return None
        n, explicit = data[0], data[1]
        if not 1 <= n < MAX_SECTIONS:
            raise FrameError("descriptor.n_sections", n, f"1..{MAX_SECTIONS - 1}")
        if explicit > 1:
            raise FrameError("descriptor.classes", explicit, "0 (implicit) or 1 (explicit)")
        width = crc_bits // 8
        pos, lengths, classes, checks, total = 2, [], [], [], 0
        for i in range(n):
            try:
                length, pos = _read_varint(data, pos, f"descriptor.section[{i}].length")
            except _Truncated:
                return None
            if length > MAX_SECTION_BYTES:
                raise FrameError(
                    f"descriptor.section[{i}].length", length, f"at most {MAX_SECTION_BYTES}"
                )
            total += length
            if total > max_total:
                raise FrameError(
                    "descriptor.total_length", total, f"at most max_bundle_bytes={max_total}"
                )
            if explicit:
                if pos >= len(data):
                    return None
                classes.append(data[pos])
                pos += 1
            else:
                classes.append(min(i, 254))
            if pos + width > len(data):
                return None
            checks.append(int.from_bytes(data[pos : pos + width], "big"))
            lengths.append(length)
            pos += width
        return cls(tuple(lengths), tuple(classes), tuple(checks)), pos


# --- NAK ranges ----------------------------------------------------------------------------


# A NAK range with this segment byte names packet numbers, not fragments: ``start`` is the
# first missing packet number of the sender's epoch, ``count`` (1..MAX_PN_NAK) how many.
# No layout has a segment 255 (classes are 0..254), so a sender that predates the form
# drops such a NAK as malformed.
PN_SEGMENT = 0xFF
MAX_PN_NAK = 1 << 16


@dataclass(frozen=True, slots=True)
class NakRange:
    """Missing fragments ``start .. start+count-1`` of ``segment``; ``count == 0`` means
    "from ``start`` to the end of the segment" (used when the receiver does not yet know how
    many fragments the segment has). ``segment == PN_SEGMENT``: packet numbers
    ``start .. start+count-1`` of the sender (``count`` >= 1)."""

    segment: int
    start: int
    count: int

    def to_bytes(self) -> bytes:
        return bytes([self.segment]) + varint(self.start) + varint(self.count)


def encode_nak(ranges: list[NakRange], max_payload: int) -> list[bytes]:
    """Pack NAK ranges into as few payloads of at most ``max_payload`` bytes as possible."""
    payloads: list[bytes] = []
    cur = bytearray()
    for r in ranges:
        b = r.to_bytes()
        if cur and len(cur) + len(b) > max_payload:
            payloads.append(bytes(cur))
            cur = bytearray()
        cur += b
    if cur:
        payloads.append(bytes(cur))
    return payloads


def decode_nak(payload: bytes) -> list[NakRange]:
    """Raises: FrameError naming the NAK field that is malformed."""
    if not payload:
        raise FrameError("nak.ranges", b"", "at least one range")
    pos, out = 0, []
    while pos < len(payload):
        segment = payload[pos]
        start, pos = _read_varint(payload, pos + 1, "nak.start")
        count, pos = _read_varint(payload, pos, "nak.count")
        if segment == PN_SEGMENT:
            if start > MAX_PACKET_NUMBER or not 1 <= count <= MAX_PN_NAK:
                raise FrameError(
                    "nak.packets", (start, count), f"packet numbers, 1..{MAX_PN_NAK} of them"
                )
        elif start > 0xFFFF or count > 0x10000:
            raise FrameError("nak.range", (start, count), "fragment indices 0..65535")
        out.append(NakRange(segment, start, count))
    return out


# --- feedback (NAK / FIN) payloads ----------------------------------------------------------

_EPOCH = struct.Struct(">I")


def encode_feedback(bundle_epoch: int, body: bytes = b"") -> bytes:
    """A NAK or FIN payload: the epoch of the bundle's sender, then (NAK) the ranges. The
    echoed epoch scopes the bundle id, so feedback about another sender session (before a
    restart) never acknowledges a bundle of this one."""
    return _EPOCH.pack(bundle_epoch) + body


def decode_feedback(payload: bytes) -> tuple[int, bytes]:
    """Raises: FrameError if the payload is too short to hold the bundle epoch."""
    if len(payload) < _EPOCH.size:
        raise FrameError("feedback.epoch", payload.hex(), "4 bytes of bundle epoch")
    return _EPOCH.unpack_from(payload)[0], payload[_EPOCH.size :]
