"""Hostile inputs for the vehicle's intake, as real files: images whose EXIF or header broke
``uplink serve`` (docs/field.md, Intake), and seeds for the intake fuzz (the suite's and
``benchmarks/fuzz_intake.py``)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def jpeg_with_gps_time(date: str = "9999:12:31", time: tuple = (24.0, 0.0, 0.0)) -> bytes:
    """A 64×48 JPEG whose EXIF GPS date and time are ``date`` / ``time``."""
    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)
    gps[29], gps[7] = date, time
    gps[1], gps[2], gps[3], gps[4] = "N", (45.0, 30.0, 0.0), "E", (7.0, 15.0, 0.0)
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 30, 200)).save(out, "JPEG", exif=exif)
    return out.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header says ``width``×``height`` (a few bytes of pixel data only)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )  # fmt: skip


def webp_with_bad_exif() -> bytes:
    """A 64×48 WebP whose EXIF block is not TIFF (Pillow raises SyntaxError reading it)."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(out, "WEBP", exif=b"Exif\0\0XXXXXXXX")
    return out.getvalue()


def seeds() -> dict[str, bytes]:
    """Small valid images of every intake suffix, with EXIF where the format carries it:
    what the fuzzers mutate."""
    img = Image.new("RGB", (32, 24), (90, 140, 60))
    exif = Image.Exif()
    exif[306] = "2026:12:03 10:15:00"
    exif.get_ifd(0x8825).update({1: "N", 2: (45.0, 30.0, 0.0), 3: "E", 4: (7.0, 15.0, 0.0),
                                 29: "2026:12:03", 7: (10.0, 15.0, 0.0)})  # fmt: skip
    out = {}
    for suffix, fmt, kw in (
        (".jpg", "JPEG", {"exif": exif}),
        (".png", "PNG", {"exif": exif}),
        (".webp", "WEBP", {"exif": exif}),
        (".tif", "TIFF", {"exif": exif}),
        (".bmp", "BMP", {}),
    ):
        b = io.BytesIO()
        img.save(b, fmt, **kw)
        out[suffix] = b.getvalue()
    return out
