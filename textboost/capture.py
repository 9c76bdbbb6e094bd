"""Capture metadata of a photo, read where a camera leaves it: the image's EXIF (GPS IFD and
DateTimeOriginal) and a sidecar ``IMAGE.json`` beside it, with the sender's overrides on top.
The record itself, and its bytes in the `.tbx` header, are :mod:`textboost.bitstream.capture`'s.
"""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from textboost.bitstream.capture import (
    MIN_ALT_M,
    CaptureMeta,
    MetaError,
    fit_name,
    parse_time,
    representable_time,
)

__all__ = ["MAX_SIDECAR_BYTES", "capture_for", "from_exif", "from_sidecar", "with_name"]

MAX_SIDECAR_BYTES = 64 << 10  # a sidecar JSON is a few hundred bytes; more is not one


def with_name(meta: CaptureMeta | None, image_path: str | Path) -> CaptureMeta:
    """``meta`` carrying the image's file name (shortened to fit: :func:`fit_name`), so the
    ground can show the photo as the camera named it."""
    from dataclasses import replace

    return replace(meta or CaptureMeta(), name=fit_name(Path(image_path).name))


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
            if MIN_ALT_M <= alt <= 60000:
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
    return t if representable_time(t) else None


def _dms(value, ref, negative: str) -> float | None:
    if value is None:
        return None
    d, m, s = (float(v) for v in value)
    deg = d + m / 60 + s / 3600
    ref = ref.decode() if isinstance(ref, bytes) else ref
    return -deg if str(ref).strip().upper() == negative else deg
