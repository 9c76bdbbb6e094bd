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

Time, position and heading, the common case, cost 12 bytes with the mask; altitude adds 2.
The quantisation error is below a GNSS fix's own error (a few metres), and the decoder
returns the grid value, so a record decoded and re-encoded gives the same bytes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_SIDECAR_BYTES",
    "CaptureMeta",
    "MetaError",
    "capture_for",
    "from_exif",
    "from_sidecar",
    "parse_time",
]

TIME_ZERO = datetime(2024, 1, 1, tzinfo=timezone.utc)
_TIME_BITS, _LAT_BITS, _LON_BITS, _ALT_BITS, _HDG_BITS, _CAM_BITS = 30, 24, 25, 16, 8, 8
_LAT_STEP = 180.0 / ((1 << _LAT_BITS) - 1)  # both poles representable
_LON_STEP = 360.0 / (1 << _LON_BITS)  # wraps: -180 and 180 are one meridian
_ALT_OFFSET = 1000
_FIELDS = ("time", "position", "altitude", "heading", "camera")
MAX_SIDECAR_BYTES = 64 << 10  # a sidecar JSON is a few hundred bytes; more is not one


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
        return bytes([mask]) + bits.to_bytes()

    @staticmethod
    def packed_size(mask: int) -> int:
        """Bytes of a record with this mask byte, the mask included.

        Raises:
            MetaError: unknown bits in the mask (a newer format, or corruption).
        """
        if mask >> len(_FIELDS):
            raise MetaError(f"mask 0x{mask:02x}: unknown field bits (expected 0x00..0x1f)")
        widths = (_TIME_BITS, _LAT_BITS + _LON_BITS, _ALT_BITS, _HDG_BITS, _CAM_BITS)
        n = sum(w for i, w in enumerate(widths) if mask >> i & 1)
        return 1 + -(-n // 8)

    @classmethod
    def from_bytes(cls, data: bytes) -> CaptureMeta:
        """Parse a record made by :meth:`to_bytes` (exactly its length)."""
        if not data:
            raise MetaError("record: empty, expected a mask byte")
        mask = data[0]
        if len(data) != cls.packed_size(mask):
            raise MetaError(
                f"record: {len(data)} bytes, mask 0x{mask:02x} needs {cls.packed_size(mask)}"
            )
        bits, kw = _Bits(data[1:]), {}
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
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str = "metadata") -> CaptureMeta:
        """A record from :meth:`to_json`'s keys (the drop folder's sidecar, the receiver's
        JSON); unknown keys and bad values raise :class:`MetaError` naming ``where``."""
        if not isinstance(obj, dict):
            raise MetaError(f"{where}: expected an object, got {type(obj).__name__}")
        known = {"time", "lat", "lon", "alt_m", "heading_deg", "camera"}
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
            return cls(**kw)
        except (MetaError, ValueError, TypeError) as e:
            raise MetaError(f"{where}: {e}") from None


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


def capture_for(
    image_path: str | Path, overrides: dict[str, Any] | None = None, *, exif: bool = True
) -> CaptureMeta | None:
    """The record sent with an image: its EXIF, then the sidecar JSON's fields over it,
    then ``overrides`` (the sender's ``--lat``/``--lon``/...; None values ignored).

    Raises: MetaError naming the file for EXIF that Pillow cannot parse (a block that is
    not TIFF, a GPS date and time past year 9999) or a bad sidecar."""
    from PIL import Image

    kw: dict[str, Any] = {}
    if exif:
        try:
            with Image.open(image_path) as im:
                found = from_exif(im)
        except (OSError, Image.DecompressionBombError):
            found = None  # the codec's own loader reports an unreadable image
        except Exception as e:  # a malformed EXIF block, a GPS date past year 9999
            raise MetaError(f"{image_path}: EXIF: unreadable ({type(e).__name__}: {e})") from None
        kw |= _set(found)
    kw |= _set(from_sidecar(image_path))
    kw |= {k: v for k, v in (overrides or {}).items() if v is not None}
    if "time" in kw and not isinstance(kw["time"], datetime):
        kw["time"] = parse_time(str(kw["time"]))
    meta = CaptureMeta(**kw)
    return None if meta.empty else meta


def _set(meta: CaptureMeta | None) -> dict[str, Any]:
    if meta is None:
        return {}
    values = {f.name: getattr(meta, f.name) for f in fields(meta)}
    return {k: v for k, v in values.items() if v is not None}


def from_sidecar(image_path: str | Path) -> CaptureMeta | None:
    """The record in ``IMAGE.json`` beside an image (its ``"capture"`` object, or the
    whole object), or None when there is no sidecar."""
    side = Path(image_path).with_suffix(".json")
    if not side.is_file():
        return None
    if (size := side.stat().st_size) > MAX_SIDECAR_BYTES:
        raise MetaError(f"{side}: {size} bytes, more than the {MAX_SIDECAR_BYTES} byte limit")
    try:
        obj = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise MetaError(f"{side}: not a readable JSON sidecar ({e})") from None
    if isinstance(obj, dict) and "capture" in obj:
        obj = obj["capture"]
    return CaptureMeta.from_json(obj, where=str(side))


def from_exif(image) -> CaptureMeta | None:
    """The record in a Pillow image's EXIF (GPS IFD and DateTimeOriginal), or None.

    Fields EXIF lacks stay None; malformed EXIF values are skipped rather than trusted,
    since cameras write them in many dialects.
    """
    exif = image.getexif()
    if not exif:
        return None
    gps = exif.get_ifd(0x8825)
    kw: dict[str, Any] = {}
    try:
        lat = _dms(gps.get(2), gps.get(1), "S")
        lon = _dms(gps.get(4), gps.get(3), "W")
        if lat is not None and lon is not None and abs(lat) <= 90 and abs(lon) <= 180:
            kw["lat"], kw["lon"] = lat, lon
        if gps.get(6) is not None:
            alt = float(gps[6]) * (-1 if gps.get(5) in (1, b"\x01") else 1)
            if -_ALT_OFFSET <= alt <= 60000:
                kw["alt_m"] = alt
        if gps.get(17) is not None and 0 <= float(gps[17]) <= 360:
            kw["heading_deg"] = float(gps[17]) % 360.0
    except (TypeError, ValueError, ZeroDivisionError):
        pass
    kw["time"] = _exif_time(exif, gps)
    meta = CaptureMeta(**{k: v for k, v in kw.items() if v is not None})
    return None if meta.empty else meta


def _exif_time(exif, gps) -> datetime | None:
    """GPS date+time (UTC by definition), else DateTimeOriginal with its offset."""
    try:
        if gps.get(29) and gps.get(7):
            h, m, s = (float(v) for v in gps[7])
            day = datetime.strptime(str(gps[29]).strip(), "%Y:%m:%d").replace(tzinfo=timezone.utc)
            t = day + timedelta(hours=h, minutes=m, seconds=round(s))
        else:
            sub = exif.get_ifd(0x8769)
            text = sub.get(36867) or exif.get(306)
            if not text:
                return None
            t = datetime.strptime(str(text).strip(), "%Y:%m:%d %H:%M:%S")
            offset = sub.get(36881)  # OffsetTimeOriginal, "+02:00"
            t = datetime.fromisoformat(t.isoformat() + (offset or "+00:00"))
            t = t.astimezone(timezone.utc)
    except (TypeError, ValueError):
        return None
    return t if 0 <= (t - TIME_ZERO).total_seconds() < 1 << _TIME_BITS else None


def _dms(value, ref, negative: str) -> float | None:
    if value is None:
        return None
    d, m, s = (float(v) for v in value)
    deg = d + m / 60 + s / 3600
    ref = ref.decode() if isinstance(ref, bytes) else ref
    return -deg if str(ref).strip().upper() == negative else deg


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
