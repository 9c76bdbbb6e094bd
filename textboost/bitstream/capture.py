"""Capture metadata: when, where and by which camera a photo was taken, in a few bytes.

An operator needs each photo's place and time as soon as its first section lands, so the
metadata travels in the `.tbx` header (section 0 of the protocol bundle, with the text).
Each image's record is self-contained: a delta against an earlier image would make this
one undecodable whenever the store-and-forward policy drops its reference, so instead
every field is quantised to what the sensor resolves and bit-packed::

    mask u8 | fields in mask order, packed MSB first, padded to a byte

    bit 0  time      30 bits  seconds since 2024-01-01T00:00:00Z (until 2058)
    bit 1  position  24 + 25  latitude, longitude on a uniform grid (≈ 1.2 m at the equator)
    bit 2  altitude  16 bits  metres above mean sea level + 1000 (-1000 .. 64535 m)
    bit 3  heading    8 bits  degrees true in 1/256 turn (1.4°)
    bit 4  camera     8 bits  camera id 0..255
    bit 5  name       after the packed fields: u8 length + the source file's name, UTF-8,
                      1..32 bytes (:func:`fit_name` shortens a longer one)

Time, position and heading, the common case, cost 12 bytes with the mask; altitude adds 2;
a name ``eu5.jpg`` adds 8. A record without a name is laid out as before bit 5 existed, so
older streams read unchanged.
The quantisation error is below a GNSS fix's own error (a few metres), and the decoder
returns the grid value, so a record decoded and re-encoded gives the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = [
    "MAX_NAME_BYTES", "MIN_ALT_M", "TIME_ZERO", "CaptureMeta", "MetaError", "fit_name",
    "parse_time", "representable_time",
]  # fmt: skip

TIME_ZERO = datetime(2024, 1, 1, tzinfo=timezone.utc)
_TIME_BITS, _LAT_BITS, _LON_BITS, _ALT_BITS, _HDG_BITS, _CAM_BITS = 30, 24, 25, 16, 8, 8
_LAT_STEP = 180.0 / ((1 << _LAT_BITS) - 1)  # both poles representable
_LON_STEP = 360.0 / (1 << _LON_BITS)  # wraps: -180 and 180 are one meridian
_ALT_OFFSET = 1000
_FIELDS = ("time", "position", "altitude", "heading", "camera", "name")
_NAME_BIT = 1 << 5
MAX_NAME_BYTES = 32  # a camera's file name fits; a long one is shortened by fit_name


def fit_name(name: str, limit: int = MAX_NAME_BYTES) -> str:
    """``name`` in at most ``limit`` bytes of UTF-8: a longer stem is cut (at a character)
    and the extension kept when it is short, so ``IMG_…_0042.jpg`` stays recognisable."""
    if len(name.encode()) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode()) > 8:
        stem, ext = name, ""
    tail = f"~.{ext}" if ext else "~"
    room = limit - len(tail.encode())
    cut = stem.encode()[:room].decode("utf-8", "ignore")
    return cut + tail


MIN_ALT_M = -_ALT_OFFSET  # the lowest altitude a record carries


def representable_time(t: datetime) -> bool:
    """Whether a record can carry ``t`` (2024-01-01 .. 2058, to the second)."""
    return 0 <= (t - TIME_ZERO).total_seconds() < 1 << _TIME_BITS


class MetaError(ValueError):
    """Capture metadata that cannot be coded or parsed; the message names the field."""


@dataclass(frozen=True, slots=True)
class CaptureMeta:
    """One photo's capture record; every field is optional.

    ``time`` is timezone-aware UTC; ``lat``/``lon`` in degrees (WGS 84) come as a pair;
    ``alt_m`` above mean sea level; ``heading_deg`` true, 0..360; ``camera`` 0..255.
    """

    time: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    alt_m: float | None = None
    heading_deg: float | None = None
    camera: int | None = None
    name: str | None = None  # the source file's name (1..32 bytes of UTF-8)

    def __post_init__(self) -> None:
        if (self.lat is None) != (self.lon is None):
            raise MetaError("position: latitude and longitude come as a pair, got one")
        if self.time is not None:
            if self.time.tzinfo is None:
                raise MetaError(f"time {self.time.isoformat()}: expected a timezone (UTC)")
            s = (self.time - TIME_ZERO).total_seconds()
            if not 0 <= s < 1 << _TIME_BITS:
                raise MetaError(f"time {self.time.isoformat()}: expected 2024-01-01 .. 2058")
        _check("latitude", self.lat, -90.0, 90.0)
        _check("longitude", self.lon, -180.0, 180.0)
        _check("altitude", self.alt_m, -_ALT_OFFSET, (1 << _ALT_BITS) - 1 - _ALT_OFFSET)
        _check("heading", self.heading_deg, 0.0, 360.0)
        if self.camera is not None and not (
            isinstance(self.camera, int) and 0 <= self.camera < 1 << _CAM_BITS
        ):
            raise MetaError(f"camera {self.camera!r}: expected an integer 0..255")
        if self.name is not None and not _name_ok(self.name):
            raise MetaError(
                f"name {self.name!r}: expected 1..{MAX_NAME_BYTES} bytes of UTF-8 (fit_name)"
            )

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def to_bytes(self) -> bytes:
        """The packed record (mask byte first); see the module docstring."""
        mask, bits = 0, _Bits()
        if self.time is not None:
            mask |= 1
            bits.put(round((self.time - TIME_ZERO).total_seconds()), _TIME_BITS)
        if self.lat is not None and self.lon is not None:
            mask |= 2
            bits.put(round((self.lat + 90.0) / _LAT_STEP), _LAT_BITS)
            bits.put(round((self.lon + 180.0) / _LON_STEP) % (1 << _LON_BITS), _LON_BITS)
        if self.alt_m is not None:
            mask |= 4
            bits.put(round(self.alt_m) + _ALT_OFFSET, _ALT_BITS)
        if self.heading_deg is not None:
            mask |= 8
            bits.put(round(self.heading_deg / 360.0 * 256) % 256, _HDG_BITS)
        if self.camera is not None:
            mask |= 16
            bits.put(self.camera, _CAM_BITS)
        tail = b""
        if self.name is not None:
            mask |= _NAME_BIT
            raw = self.name.encode()
            tail = bytes([len(raw)]) + raw
        return bytes([mask]) + bits.to_bytes() + tail

    @staticmethod
    def packed_size(mask: int) -> int:
        """Bytes of a record with this mask byte, the mask included, up to the name (with
        bit 5 set, a length byte and the name follow).

        Raises:
            MetaError: unknown bits in the mask (a newer format, or corruption).
        """
        if mask >> len(_FIELDS):
            raise MetaError(f"mask 0x{mask:02x}: unknown field bits (expected 0x00..0x3f)")
        widths = (_TIME_BITS, _LAT_BITS + _LON_BITS, _ALT_BITS, _HDG_BITS, _CAM_BITS, 0)
        n = sum(w for i, w in enumerate(widths) if mask >> i & 1)
        return 1 + -(-n // 8)

    @classmethod
    def from_bytes(cls, data: bytes) -> CaptureMeta:
        """Parse a record made by :meth:`to_bytes` (exactly its length)."""
        if not data:
            raise MetaError("record: empty, expected a mask byte")
        mask = data[0]
        size = cls.packed_size(mask)
        kw: dict[str, Any] = {}
        if mask & _NAME_BIT:
            if len(data) <= size:
                raise MetaError("name: bit 5 set but no name follows")
            raw = data[size + 1 :]
            if len(raw) != data[size]:
                raise MetaError(f"name: {len(raw)} bytes, its length byte says {data[size]}")
            try:
                kw["name"] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise MetaError(f"name: not UTF-8 ({raw[:32].hex()})") from None
            data = data[:size]
        if len(data) != size:
            raise MetaError(f"record: {len(data)} bytes, mask 0x{mask:02x} needs {size}")
        bits = _Bits(data[1:])
        if mask & 1:
            seconds = bits.get(_TIME_BITS)
            kw["time"] = TIME_ZERO + timedelta(seconds=seconds)
        if mask & 2:
            lat_q, lon_q = bits.get(_LAT_BITS), bits.get(_LON_BITS)
            kw["lat"] = min(90.0, lat_q * _LAT_STEP - 90.0)
            lon = lon_q * _LON_STEP - 180.0
            kw["lon"] = lon
        if mask & 4:
            kw["alt_m"] = float(bits.get(_ALT_BITS) - _ALT_OFFSET)
        if mask & 8:
            kw["heading_deg"] = bits.get(_HDG_BITS) * 360.0 / 256
        if mask & 16:
            kw["camera"] = bits.get(_CAM_BITS)
        if bits.rest():
            raise MetaError("record: padding bits are not zero")
        return cls(**kw)

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready values (ISO 8601 time, degrees rounded to the grid)."""
        out: dict[str, Any] = {}
        if self.time is not None:
            out["time"] = self.time.isoformat().replace("+00:00", "Z")
        if self.lat is not None and self.lon is not None:
            out["lat"], out["lon"] = round(self.lat, 6), round(self.lon, 6)
        if self.alt_m is not None:
            out["alt_m"] = self.alt_m
        if self.heading_deg is not None:
            out["heading_deg"] = round(self.heading_deg, 2)
        if self.camera is not None:
            out["camera"] = self.camera
        if self.name is not None:
            out["name"] = self.name
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str = "metadata") -> CaptureMeta:
        """A record from :meth:`to_json`'s keys (the drop folder's sidecar, the receiver's
        JSON); unknown keys and bad values raise :class:`MetaError` naming ``where``."""
        if not isinstance(obj, dict):
            raise MetaError(f"{where}: expected an object, got {type(obj).__name__}")
        known = {"time", "lat", "lon", "alt_m", "heading_deg", "camera", "name"}
        if extra := sorted(set(obj) - known):
            raise MetaError(f"{where}: unknown key {extra[0]!r} (expected {sorted(known)})")
        kw: dict[str, Any] = {}
        try:
            if obj.get("time") is not None:
                kw["time"] = parse_time(str(obj["time"]))
            for key in ("lat", "lon", "alt_m", "heading_deg"):
                if (value := obj.get(key)) is not None:
                    if isinstance(value, bool) or not isinstance(value, int | float):
                        raise MetaError(f"{key} {value!r}: expected a number")
                    kw[key] = float(value)
            if obj.get("camera") is not None:
                kw["camera"] = obj["camera"]
            if obj.get("name") is not None:
                kw["name"] = obj["name"]
            return cls(**kw)
        except (MetaError, ValueError, TypeError) as e:
            raise MetaError(f"{where}: {e}") from None


def _name_ok(name: object) -> bool:
    try:
        return isinstance(name, str) and 1 <= len(name.encode()) <= MAX_NAME_BYTES
    except UnicodeEncodeError:  # a lone surrogate
        return False


def parse_time(text: str) -> datetime:
    """ISO 8601 (``2026-12-03T10:15:00Z``; no zone means UTC) or Unix seconds."""
    try:
        return datetime.fromtimestamp(float(text), timezone.utc)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MetaError(f"time {text!r}: expected ISO 8601 or Unix seconds") from None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def _check(name: str, value: float | None, lo: float, hi: float) -> None:
    if value is not None and not (math.isfinite(value) and lo <= value <= hi):
        raise MetaError(f"{name} {value}: expected {lo:g} .. {hi:g}")


class _Bits:
    """MSB-first bit packing."""

    def __init__(self, data: bytes = b"") -> None:
        self.acc, self.n = int.from_bytes(data, "big"), len(data) * 8
        self.out: list[tuple[int, int]] = []

    def put(self, value: int, width: int) -> None:
        self.out.append((value, width))

    def to_bytes(self) -> bytes:
        acc = n = 0
        for value, width in self.out:
            acc, n = acc << width | value, n + width
        pad = -n % 8
        return (acc << pad).to_bytes((n + pad) // 8, "big")

    def get(self, width: int) -> int:
        self.n -= width
        return self.acc >> self.n & ((1 << width) - 1)

    def rest(self) -> int:
        return self.acc & ((1 << self.n) - 1)
