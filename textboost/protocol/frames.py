"""Frame layout, frame check sequence, authentication tag, and the small payload codecs.

Every frame (big-endian), protocol version 2::

    byte 0       type (high nibble) | flags (low nibble)
    bytes 1-4    bundle id (scoped by the epoch of the bundle's sender; never wraps)
    byte 5       segment index (DATA, PARITY; 0 otherwise)
    bytes 6-7    fragment index (DATA), FEC group index (PARITY), 0 otherwise
    bytes 8-11   epoch of this frame's sender (chosen by its driver, never repeated)
    bytes 12-15  packet number: 0, 1, 2, ... per epoch of this frame's sender
    byte 16      key id (only with a key)
    payload      up to MTU - overhead bytes
    tag          truncated HMAC-SHA256 over protocol id + everything before (only with a key)
    FCS          CRC-32 or CRC-16/CCITT over everything before it

Each end stamps its frames with its own epoch and a packet number that grows by one per
frame (re-sent frames get new numbers), so the other end's :class:`ReplayWindow` drops
any frame it has accepted before, any frame older than its window, and any frame of an
older epoch. The tag covers the epoch and packet number, so with a key they cannot be
forged; without one the window still drops duplicates.

The CRC registers start from a protocol-specific seed, so frames of another protocol (or
another version of this one) fail the check instead of being misread. The header is 16 bytes
and the whole overhead 20 bytes with CRC-32 (18 with CRC-16), 29 with the key id and an
8-byte tag.

A bundle is sent as byte *segments*: segment 0 opens with the bundle's descriptor, and
each segment carries consecutive sections back to back (``policy="fifo"``: the whole
bundle is one segment; ``"priority_interleave"``: one segment per priority class), so small
sections share frames instead of each paying a frame header.

Frame types: DATA (a fragment of a segment), PARITY (FEC parity over a group of DATA
frames), EOF (the sender finished its first pass over a bundle; prompts NAK or FIN),
NAK (receiver: the bundle's epoch, then ranges of missing fragments), FIN (receiver: the
bundle's epoch; bundle complete).
"""

from __future__ import annotations

import binascii
import hmac
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from textboost.protocol.config import (
    HEADER_BYTES,
    KEY_ID_BYTES,
    MAX_BUNDLE_ID,
    MAX_EPOCH,
    MAX_PACKET_NUMBER,
    LinkConfig,
)
from textboost.protocol.errors import AuthenticationError, CorruptFrameError, FrameError
from textboost.varint import varint

__all__ = [
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
]

MAX_SECTIONS = 255  # sections 0..254 per bundle
MAX_SECTION_BYTES = 1 << 24
_HEADER = struct.Struct(">BIBHII")
_PROTOCOL_ID = b"TBL2"  # seeds both CRCs: frames of other protocols/versions fail the FCS
_CRC32_SEED = zlib.crc32(_PROTOCOL_ID)
_CRC16_SEED = binascii.crc_hqx(_PROTOCOL_ID, 0xFFFF)


class FrameType(IntEnum):
    DATA = 1
    PARITY = 2
    EOF = 3
    NAK = 4
    FIN = 5


class Flag(IntFlag):
    NONE = 0
    LAST = 1  # DATA: the last fragment of its segment
    RETX = 2  # DATA/PARITY/EOF: a retransmission (no new information about gaps)


_KNOWN_FLAGS = int(Flag.LAST | Flag.RETX)


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """One decoded frame (payload excludes header, key id, tag and FCS). ``epoch`` and
    ``pn`` (packet number) are those of the end that sent the frame."""

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
            ("index", self.index, 0xFFFF),
            ("epoch", self.epoch, MAX_EPOCH),
            ("pn", self.pn, MAX_PACKET_NUMBER),
        ):
            if not 0 <= value <= top:
                raise FrameError(name, value, f"0..{top}")


def _fcs(body: bytes, crc_bits: int) -> bytes:
    if crc_bits == 32:
        return struct.pack(">I", zlib.crc32(body, _CRC32_SEED))
    return struct.pack(">H", binascii.crc_hqx(body, _CRC16_SEED))


def _tag(key: bytes, body: bytes, n: int) -> bytes:
    return hmac.new(key, _PROTOCOL_ID + body, "sha256").digest()[:n]


def encode_frame(frame: Frame, config: LinkConfig) -> bytes:
    """Serialize ``frame`` with tag and FCS.

    Returns:
        The frame bytes, at most ``config.mtu_bytes`` long.
    Raises:
        FrameError: the payload does not fit the MTU.
    """
    body = _HEADER.pack(
        (int(frame.type) << 4) | int(frame.flags),
        frame.bundle_id,
        frame.segment,
        frame.index,
        frame.epoch,
        frame.pn,
    )
    if config.auth_key is not None:
        body += bytes([config.key_id])
    body += frame.payload
    if config.auth_key is not None:
        body += _tag(config.auth_key, body, config.tag_bytes)
    out = body + _fcs(body, config.crc_bits)
    if len(out) > config.mtu_bytes:
        raise FrameError("length", len(out), f"at most mtu_bytes={config.mtu_bytes}")
    return out


def decode_frame(data: bytes, config: LinkConfig) -> Frame:
    """Check and parse one frame.

    Returns:
        The :class:`Frame`.
    Raises:
        CorruptFrameError: too short, or the FCS does not match.
        AuthenticationError: the HMAC tag does not match, or the frame names another key.
        FrameError: a field outside its allowed values (type, flags, length).
        Any other exception is a bug. Replay checks are the caller's (:class:`ReplayWindow`).
    """
    data = bytes(data)
    tag_n = config.tag_bytes if config.auth_key is not None else 0
    kid_n = KEY_ID_BYTES if config.auth_key is not None else 0
    min_len = HEADER_BYTES + kid_n + tag_n + config.crc_bytes
    if len(data) < min_len:
        raise CorruptFrameError("length", len(data), f"at least {min_len} bytes")
    if len(data) > config.mtu_bytes:
        raise FrameError("length", len(data), f"at most mtu_bytes={config.mtu_bytes}")
    body, fcs = data[: -config.crc_bytes], data[-config.crc_bytes :]
    if _fcs(body, config.crc_bits) != fcs:
        raise CorruptFrameError("FCS", fcs.hex(), f"CRC-{config.crc_bits} of the frame")
    if config.auth_key is not None:
        body, tag = body[:-tag_n], body[-tag_n:]
        if not hmac.compare_digest(_tag(config.auth_key, body, tag_n), tag):
            raise AuthenticationError("tag", tag.hex(), "HMAC-SHA256 under the shared key")
        if body[HEADER_BYTES] != config.key_id:
            raise AuthenticationError("key id", body[HEADER_BYTES], f"{config.key_id}")
    type_flags, bundle_id, segment, index, epoch, pn = _HEADER.unpack_from(body)
    try:
        ftype = FrameType(type_flags >> 4)
    except ValueError:
        raise FrameError("type", type_flags >> 4, "1..5 (DATA PARITY EOF NAK FIN)") from None
    flags = type_flags & 0x0F
    if flags & ~_KNOWN_FLAGS:
        raise FrameError("flags", flags, f"a subset of {_KNOWN_FLAGS:#x}")
    return Frame(
        type=ftype,
        bundle_id=bundle_id,
        segment=segment,
        index=index,
        flags=Flag(flags),
        payload=body[HEADER_BYTES + kid_n :],
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
    own output: no FCS or tag check; use :func:`decode_frame` for received frames)."""
    type_flags, bundle_id, *_ = _HEADER.unpack_from(data)
    return FrameInfo(FrameType(type_flags >> 4), bundle_id, bool(type_flags & Flag.RETX))


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


@dataclass(frozen=True, slots=True)
class NakRange:
    """Missing fragments ``start .. start+count-1`` of ``segment``; ``count == 0`` means
    "from ``start`` to the end of the segment" (used when the receiver does not yet know how
    many fragments the segment has)."""

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
        if start > 0xFFFF or count > 0x10000:
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
