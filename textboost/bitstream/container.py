"""The `.tbx` container: a versioned header and CRC-protected sections.

Layout (all integers little-endian, ``varint`` = unsigned LEB128)::

    magic "TB" | version u8 | model_id 4 bytes | width varint | height varint
    | scale u8 | rate u16 | n_groups u8 (groups the model codes) | n_sections u8
    | [version 3: capture metadata, mask byte + packed fields] | header CRC32
    then n_sections × ( length varint | CRC32 of payload | payload )

``width``/``height`` are the size of the image delivered; ``scale`` is the downscale
divisor in eighths (8: coded at full size, 12: at 2/3 of each side), so a budget below
the model's lowest full-size rate is met by coding a smaller image, which the decoder
resizes back (as the baselines do under the same budget).

Sections come in a fixed order: text, z, y group 1 .. y group k, with k ≤ n_groups.
A container holding fewer than ``n_groups`` y groups is valid: the decoder predicts
the missing groups, so a link can deliver an image progressively. Every byte counts at
0.01 bpp (a 768×512 image is 492 bytes), so the header is 20 bytes for images up to
16383 px a side, plus 5 bytes a section.

Version 3 adds the capture metadata (:mod:`textboost.capture`: time, position, altitude,
heading, camera; 12 bytes for time, position and heading) inside the header, under its
CRC, so it arrives with the header in the first section a link delivers. A stream without
metadata is still written as version 2, byte for byte what older decoders read; both
versions are read.

Anything malformed raises :class:`BitstreamError`, whose message names the section and
what was expected.

On a link a container travels as a protocol bundle of sections, numbered as
:class:`SectionKind`: section 0 is the header and text (a `.tbx` of its own, so it parses
and carries the header CRC), section 1 the z stream, section 2 + k y group k + 1.
:meth:`Container.to_sections` makes them and :meth:`Container.from_sections` rebuilds a
container from any in-order prefix; a prefix of :attr:`Container.IMAGE_SECTIONS` or more
decodes to an image.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import ClassVar

from textboost.bitstream.capture import CaptureMeta, MetaError
from textboost.bitstream.varint import varint

__all__ = [
    "FORMAT_VERSION",
    "FULL_SCALE",
    "MAGIC",
    "BitstreamError",
    "Container",
    "Header",
    "SectionKind",
    "coded_size",
]

MAGIC = b"TB"
FORMAT_VERSION = 3  # the newest version written and read
READ_VERSIONS = (2, 3)
MAX_DIM = 1 << 16
FULL_SCALE = 8  # the scale byte counts eighths: 8 = no downscale


class BitstreamError(ValueError):
    """A `.tbx` stream that cannot be decoded: corrupt, truncated or from another model."""


class SectionKind(IntEnum):
    """Section numbers, in the container and in its protocol bundle alike (where section
    TEXT also carries the header)."""

    TEXT = 0
    Z = 1
    Y = 2  # y group i is section Y + i


def section_name(index: int) -> str:
    if index == SectionKind.TEXT:
        return "text"
    if index == SectionKind.Z:
        return "z"
    return f"y group {index - SectionKind.Y + 1}"


@dataclass(frozen=True, slots=True)
class Header:
    model_id: bytes
    width: int
    height: int
    rate: int  # the rate parameter, 0..65535 (0 = lowest rate)
    n_groups: int  # y groups the model codes; the container may carry fewer
    scale: int = FULL_SCALE  # downscale divisor in eighths (8..255)
    meta: CaptureMeta | None = None  # capture metadata (version 3), None: not sent

    @property
    def coded_size(self) -> tuple[int, int]:
        """(width, height) of the image the latents code: the size divided by scale/8."""
        return coded_size(self.width, self.height, self.scale)

    def __post_init__(self) -> None:
        if len(self.model_id) != 4:
            raise ValueError(f"model_id must be 4 bytes, got {len(self.model_id)}")
        if not (0 < self.width < MAX_DIM and 0 < self.height < MAX_DIM):
            raise ValueError(f"image size {self.width}x{self.height} outside 1..{MAX_DIM - 1}")
        if not 0 <= self.rate <= 0xFFFF:
            raise ValueError(f"rate {self.rate} outside 0..65535")
        if not 1 <= self.n_groups <= 255:
            raise ValueError(f"n_groups {self.n_groups} outside 1..255")
        if not FULL_SCALE <= self.scale <= 255:
            raise ValueError(f"scale {self.scale} outside {FULL_SCALE}..255 (eighths)")


def coded_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """The size coded for an image of ``width``×``height`` at ``scale`` eighths (rounded up)."""
    return tuple(max(1, -(-side * FULL_SCALE // scale)) for side in (width, height))


@dataclass(frozen=True, slots=True)
class Container:
    header: Header
    text: bytes = b""
    z: bytes = b""
    groups: tuple[bytes, ...] = field(default_factory=tuple)

    # Bundle sections before the first y group: header and text, z. A prefix this long
    # decodes to an image; a shorter one carries the header and text only.
    IMAGE_SECTIONS: ClassVar[int] = int(SectionKind.Y)

    def __post_init__(self) -> None:
        if len(self.groups) > self.header.n_groups:
            raise ValueError(
                f"{len(self.groups)} y groups but the header says the model codes "
                f"{self.header.n_groups}"
            )

    @property
    def sections(self) -> list[bytes]:
        return [self.text, self.z, *self.groups]

    def to_sections(self) -> list[bytes]:
        """The protocol bundle's sections: the header and text as a `.tbx` of their own,
        then z, then each y group (priority class = section index, decoding order)."""
        head = Container(header=self.header, text=self.text).to_bytes()
        return [head, self.z, *self.groups]

    @classmethod
    def from_sections(cls, sections: Sequence[bytes], head: Container | None = None) -> Container:
        """Rebuild a container from an in-order prefix of :meth:`to_sections`: the header
        and text, z if section 1 arrived (else empty), and the y groups that arrived.
        ``head``: section 0 already parsed (a receiver reads the words when it lands).

        Raises:
            BitstreamError: section 0 is not a valid header/text container, or more groups
                arrived than the header allows.
            ValueError: no sections.
        """
        if not sections:
            raise ValueError("no bundle sections (header and text missing)")
        if head is None:
            head = cls.parse(sections[SectionKind.TEXT])
        groups = tuple(sections[SectionKind.Y :])
        if len(groups) > head.header.n_groups:
            raise BitstreamError(
                f"bundle: {len(groups)} y groups but the header says {head.header.n_groups}"
            )
        z = sections[SectionKind.Z] if len(sections) > SectionKind.Z else b""
        return cls(header=head.header, text=head.text, z=z, groups=groups)

    @classmethod
    def groups_in(cls, n_sections: int) -> int:
        """How many y groups a bundle prefix of ``n_sections`` sections holds."""
        return max(0, n_sections - SectionKind.Y)

    def truncated(self, n_groups: int) -> Container:
        """The same image with only the first ``n_groups`` y groups (progressive delivery)."""
        return replace(self, groups=self.groups[:n_groups])

    def to_bytes(self) -> bytes:
        h = self.header
        meta = h.meta.to_bytes() if h.meta is not None and not h.meta.empty else b""
        head = bytearray(MAGIC)
        head.append(FORMAT_VERSION if meta else 2)
        head += h.model_id
        head += varint(h.width) + varint(h.height)
        head += struct.pack("<BHBB", h.scale, h.rate, h.n_groups, len(self.sections))
        head += meta
        head += struct.pack("<I", zlib.crc32(head))
        out = bytearray(head)
        for payload in self.sections:
            out += varint(len(payload))
            out += struct.pack("<I", zlib.crc32(payload))
            out += payload
        return bytes(out)

    @classmethod
    def parse(cls, data: bytes, *, model_id: bytes | None = None) -> Container:
        """Parse and verify a stream; ``model_id`` (if given) must match the header's."""
        data = bytes(data)
        r = _Reader(data)
        header, n_sections = _read_header(r, data, model_id)
        payloads = []
        for i in range(n_sections):
            name = section_name(i)
            length = r.varint(name, "length")
            (crc,) = struct.unpack("<I", r.take(4, name, "CRC32"))
            payload = r.take(length, name, f"payload of {length} bytes")
            if zlib.crc32(payload) != crc:
                raise BitstreamError(f"{name}: CRC32 mismatch ({length}-byte payload corrupt)")
            payloads.append(payload)
        if r.pos != len(data):
            raise BitstreamError(
                f"trailer: {len(data) - r.pos} unexpected bytes after the last section"
            )
        return cls(header=header, text=payloads[0], z=payloads[1], groups=tuple(payloads[2:]))

    @staticmethod
    def parse_head(data: bytes) -> tuple[Header, bytes] | None:
        """The header and the leading bytes of the text section from the first bytes of a
        stream (or of bundle section 0), before the text's CRC can be checked: the text
        section is a prefix code, so its first words are read early. None until the header
        and the text's length and CRC fields are in.

        Raises:
            BitstreamError: the header is complete but bad (CRC, version, fields).
        """
        data = bytes(data)
        r = _Reader(data)
        try:
            header, _ = _read_header(r, data, None)
            length = r.varint("text", "length")
            r.take(4, "text", "CRC32")
        except _Truncated:
            return None
        return header, data[r.pos : r.pos + length]


def _read_header(r: _Reader, data: bytes, model_id: bytes | None) -> tuple[Header, int]:
    """The header and the number of sections that follow it, verified."""
    magic = r.take(2, "header", "magic")
    if magic != MAGIC:
        raise BitstreamError(f"header: bad magic {magic!r}, expected {MAGIC!r} (not a .tbx)")
    version = r.u8("header", "format version")
    if version not in READ_VERSIONS:
        raise BitstreamError(
            f"header: format version {version}, this decoder reads versions "
            f"{', '.join(map(str, READ_VERSIONS))}"
        )
    mid = r.take(4, "header", "model id")
    width = r.varint("header", "width")
    height = r.varint("header", "height")
    scale, rate, n_groups, n_sections = struct.unpack(
        "<BHBB", r.take(5, "header", "scale/rate/groups")
    )
    meta_bytes = b""
    if version >= 3:
        mask = r.u8("header", "metadata mask")
        try:
            size = CaptureMeta.packed_size(mask)
        except MetaError as e:
            raise BitstreamError(f"header: metadata {e}") from None
        meta_bytes = bytes([mask]) + r.take(size - 1, "header", f"{size}-byte metadata")
        if mask & 0x20:  # the source file's name: a length byte, then UTF-8
            n = r.u8("header", "metadata name length")
            meta_bytes += bytes([n]) + r.take(n, "header", f"{n}-byte metadata name")
    crc_end = r.pos
    (crc,) = struct.unpack("<I", r.take(4, "header", "CRC32"))
    if zlib.crc32(data[:crc_end]) != crc:
        raise BitstreamError("header: CRC32 mismatch (header bytes corrupt)")
    if not (0 < width < MAX_DIM and 0 < height < MAX_DIM):
        raise BitstreamError(f"header: image size {width}x{height} outside 1..{MAX_DIM - 1}")
    if scale < FULL_SCALE:
        raise BitstreamError(f"header: scale {scale}/8 below 1 (expected {FULL_SCALE}..255)")
    if n_groups < 1 or not 2 <= n_sections <= 2 + n_groups:
        raise BitstreamError(
            f"header: {n_sections} sections for {n_groups} y groups, expected 2..{2 + n_groups}"
        )
    if model_id is not None and mid != model_id:
        raise BitstreamError(
            f"header: model id {mid.hex()} but this codec's model is {model_id.hex()} "
            "(stream from another model)"
        )
    try:
        meta = CaptureMeta.from_bytes(meta_bytes) if meta_bytes else None
    except MetaError as e:
        raise BitstreamError(f"header: metadata {e}") from None
    header = Header(
        model_id=mid, width=width, height=height, rate=rate, n_groups=n_groups,
        scale=scale, meta=meta,
    )  # fmt: skip
    return header, n_sections


class _Truncated(BitstreamError):
    """The stream ends inside a field."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, section: str, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise _Truncated(
                f"{section}: truncated, expected {what} at byte {self.pos} but the stream "
                f"has {len(self.data)} bytes"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self, section: str, what: str) -> int:
        return self.take(1, section, what)[0]

    def varint(self, section: str, what: str) -> int:
        value = shift = 0
        for _ in range(5):
            b = self.u8(section, what)
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
        raise BitstreamError(f"{section}: {what} varint longer than 5 bytes")
