"""Erasure coding across a group of frames: Reed–Solomon over GF(256), one codeword per
byte column, using the `reedsolo` library.

Why across frames and not inside each frame: on the links this project targets a damaged
frame is lost whole (the LoRa/SBD modem drops a packet whose PHY CRC fails, a UDP datagram
arrives or not), so a per-frame RS code that repairs byte errors inside a frame that did
arrive would rarely help. Coding each byte position across ``n`` source frames plus ``m``
parity frames (what zfec does) turns any ``m`` lost or CRC-failed frames of the group into
known erasures that RS corrects exactly. We use `reedsolo` (already a dependency, pure
Python, so it runs on aarch64 edge boards without a compiled wheel) in erasure-only mode
rather than adding zfec; the cost is speed (≈ 10 µs per column to encode, ≈ 50 µs to
decode here), which is small next to links of a few kbit/s.

Source rows are ``flags u8 | length u16 | fragment payload`` zero-padded to the longest row
of the group, so a recovered row gives back the fragment's exact bytes and LAST flag.
"""

from __future__ import annotations

import struct

import reedsolo

from textboost.protocol.errors import FrameError

__all__ = ["decode_group", "encode_group", "row_for", "unpack_row"]

_codecs: dict[int, reedsolo.RSCodec] = {}


def _rs(nsym: int) -> reedsolo.RSCodec:
    if nsym not in _codecs:
        _codecs[nsym] = reedsolo.RSCodec(nsym)
    return _codecs[nsym]


def row_for(flags: int, payload: bytes) -> bytes:
    """The FEC source row of one DATA fragment."""
    return struct.pack(">BH", flags, len(payload)) + payload


def unpack_row(row: bytes) -> tuple[int, bytes]:
    """Invert :func:`row_for` on a (padded) row. Raises: FrameError if the length is bad."""
    flags, length = struct.unpack_from(">BH", row)
    if 3 + length > len(row):
        raise FrameError("fec.row_length", length, f"at most {len(row) - 3}")
    return flags, row[3 : 3 + length]


def encode_group(rows: list[bytes], n_parity: int) -> list[bytes]:
    """Parity rows for ``rows`` (each parity row as long as the longest source row)."""
    width = max(len(r) for r in rows)
    padded = [r.ljust(width, b"\0") for r in rows]
    rs = _rs(n_parity)
    n = len(rows)
    parity = [bytearray(width) for _ in range(n_parity)]
    for j in range(width):
        codeword = rs.encode(bytes(r[j] for r in padded))
        for i in range(n_parity):
            parity[i][j] = codeword[n + i]
    return [bytes(p) for p in parity]


def decode_group(rows: list[bytes | None], parity: list[bytes | None]) -> list[bytes] | None:
    """Recover missing source rows.

    Args:
        rows: the group's source rows in order, None where missing (may be unpadded).
        parity: the group's parity rows in order, None where missing.
    Returns:
        All source rows (padded to the parity width), or None while more rows are
        missing than parity rows arrived.
    Raises:
        FrameError: the parity rows disagree in width, or RS decoding fails.
    """
    n, m = len(rows), len(parity)
    erased = [i for i, r in enumerate(rows) if r is None] + [
        n + i for i, p in enumerate(parity) if p is None
    ]
    if len(erased) > m:
        return None
    widths = {len(p) for p in parity if p is not None}
    if len(widths) != 1:
        raise FrameError("fec.parity_width", sorted(widths), "one width per group")
    width = widths.pop()
    if any(r is not None and len(r) > width for r in rows):
        raise FrameError("fec.row_width", width, "parity at least as wide as every row")
    cols = [(r or b"").ljust(width, b"\0") for r in rows] + [
        (p or b"").ljust(width, b"\0") for p in parity
    ]
    rs = _rs(m)
    out = [bytearray(width) for _ in range(n)]
    for j in range(width):
        codeword = bytearray(c[j] for c in cols)
        try:
            msg = rs.decode(codeword, erase_pos=erased)[0]
        except reedsolo.ReedSolomonError as exc:
            raise FrameError("fec.column", j, f"a decodable RS codeword ({exc})") from None
        for i in range(n):
            out[i][j] = msg[i]
    return [bytes(o) for o in out]
