"""Erasure coding across a group of frames: Reed–Solomon over GF(256), one codeword per
byte column, using the `reedsolo` library.

Why across frames and not inside each frame: on the links this project targets a damaged
frame is lost whole (the LoRa/SBD modem drops a packet whose PHY CRC fails, a UDP datagram
arrives or not), so a per-frame RS code that repairs byte errors inside a frame that did
arrive would rarely help. Coding each byte position across ``n`` source frames plus ``m``
parity frames (what zfec does) turns any ``m`` lost or CRC-failed frames of the group into
known erasures that RS corrects exactly.

The code is reedsolo's systematic RS(n+m, n) with primitive polynomial 0x11d (`reedsolo` is
already a dependency and pure Python, so it runs on aarch64 edge boards without a compiled
wheel; zfec would add one). Calling reedsolo per byte column costs ≈ 10 µs to encode and
≈ 50 µs to decode a column, so both directions work on all columns at once: encoding is a
GF(256) matrix product with the code's parity matrix, read off reedsolo's encoder; decoding
only has erasures to fill, which for an MDS code is linear algebra — any n of the n+m rows
determine the data, so the receiver inverts those n rows of the generator matrix
(Gauss–Jordan over GF(256)) and applies the inverse. Tests check the encoder byte for byte
against reedsolo and recovery from random erasure patterns.

Source rows are ``flags u8 | length u16 | fragment payload`` zero-padded to the longest row
of the group, so a recovered row gives back the fragment's exact bytes and LAST flag.
"""

from __future__ import annotations

import struct

import numpy as np
import reedsolo

from textboost.protocol.errors import FrameError

__all__ = ["decode_group", "encode_group", "row_for", "unpack_row"]

_codecs: dict[int, reedsolo.RSCodec] = {}
_PARITY: dict[tuple[int, int], np.ndarray] = {}
_MUL: np.ndarray | None = None
_INV: np.ndarray | None = None
_ROW = struct.Struct(">BH")  # a source row's prefix: flags u8 | payload length u16


def _rs(nsym: int) -> reedsolo.RSCodec:
    if nsym not in _codecs:
        _codecs[nsym] = reedsolo.RSCodec(nsym)
    return _codecs[nsym]


def row_for(flags: int, payload: bytes) -> bytes:
    """The FEC source row of one DATA fragment."""
    return _ROW.pack(flags, len(payload)) + payload


def unpack_row(row: bytes) -> tuple[int, bytes]:
    """Invert :func:`row_for` on a (padded) row. Raises: FrameError if the row is shorter
    than its prefix or its length field points past its end."""
    if len(row) < _ROW.size:
        raise FrameError("fec.row_width", len(row), f"at least {_ROW.size} bytes")
    flags, length = _ROW.unpack_from(row)
    if 3 + length > len(row):
        raise FrameError("fec.row_length", length, f"at most {len(row) - 3}")
    return flags, row[3 : 3 + length]


def _mul_table() -> np.ndarray:
    """GF(256) products, ``table[a, b] = a·b``, from reedsolo's log/antilog tables."""
    global _MUL
    if _MUL is None:
        _rs(1)  # initialises reedsolo's tables (primitive polynomial 0x11d)
        exp = np.frombuffer(bytes(reedsolo.gf_exp), np.uint8)
        log = np.frombuffer(bytes(reedsolo.gf_log), np.uint8).astype(np.int64)
        table = exp[(log[:, None] + log[None, :]) % 255]
        table[0, :] = table[:, 0] = 0
        _MUL = table
    return _MUL


def _inverse_table() -> np.ndarray:
    """Multiplicative inverses in GF(256) (``inv[0]`` unused)."""
    global _INV
    if _INV is None:
        rows, cols = np.nonzero(_mul_table() == 1)
        _INV = np.zeros(256, np.uint8)
        _INV[rows] = cols
    return _INV


def _parity_matrix(n: int, m: int) -> np.ndarray:
    """The m×n GF(256) matrix of reedsolo's systematic RS(n+m, n) code: RS encoding is
    linear, so column j is the parity of the j-th unit message."""
    key = (n, m)
    if key not in _PARITY:
        rs = _rs(m)
        cols = [bytes(rs.encode(bytes(1 if k == j else 0 for k in range(n))))[n:] for j in range(n)]
        _PARITY[key] = np.array([list(c) for c in cols], np.uint8).T.copy()
    return _PARITY[key]


def encode_group(rows: list[bytes], n_parity: int) -> list[bytes]:
    """Parity rows for ``rows`` (each parity row as long as the longest source row).

    Byte for byte the parity reedsolo's ``RSCodec(n_parity).encode`` gives for each column,
    computed for all columns at once as a GF(256) matrix product.
    """
    width = max(len(r) for r in rows)
    data = np.frombuffer(b"".join(r.ljust(width, b"\0") for r in rows), np.uint8)
    data = data.reshape(len(rows), width)
    mul, p = _mul_table(), _parity_matrix(len(rows), n_parity)
    parity = np.zeros((n_parity, width), np.uint8)
    for j in range(len(rows)):
        parity ^= mul[p[:, j]][:, data[j]]
    return [row.tobytes() for row in parity]


def decode_group(rows: list[bytes | None], parity: list[bytes | None]) -> list[bytes] | None:
    """Recover missing source rows.

    Args:
        rows: the group's source rows in order, None where missing (may be unpadded).
        parity: the group's parity rows in order, None where missing.
    Returns:
        All source rows (recovered ones padded to the parity width), or None while more
        rows are missing than parity rows arrived.
    Raises:
        FrameError: the parity rows disagree in width or are narrower than a row.
    """
    n, m = len(rows), len(parity)
    erased = [i for i, r in enumerate(rows) if r is None] + [
        n + i for i, p in enumerate(parity) if p is None
    ]
    if len(erased) > m:
        return None
    if all(r is not None for r in rows):
        return list(rows)  # nothing to recover
    widths = {len(p) for p in parity if p is not None}
    if len(widths) != 1:
        raise FrameError("fec.parity_width", sorted(widths), "one width per group")
    width = widths.pop()
    if any(r is not None and len(r) > width for r in rows):
        raise FrameError("fec.row_width", width, "parity at least as wide as every row")
    # Any n of the n+m rows of an MDS code determine the data: invert those n rows of the
    # generator [I; P] and apply the inverse to the received rows (all columns at once).
    have = [i for i, r in enumerate(rows) if r is not None]
    have += [n + i for i, p in enumerate(parity) if p is not None]
    chosen = have[:n]
    gen = np.vstack([np.eye(n, dtype=np.uint8), _parity_matrix(n, m)])
    inverse = _gf_inverse(gen[chosen])
    received = [(rows[i] if i < n else parity[i - n]) for i in chosen]
    y = np.frombuffer(b"".join(r.ljust(width, b"\0") for r in received), np.uint8)
    y = y.reshape(n, width)
    mul = _mul_table()
    out: list[bytes] = []
    for i, r in enumerate(rows):
        if r is not None:
            out.append(r)
            continue
        acc = np.zeros(width, np.uint8)
        for j in range(n):
            acc ^= mul[inverse[i, j]][y[j]]
        out.append(acc.tobytes())
    return out


def _gf_inverse(a: np.ndarray) -> np.ndarray:
    """Inverse of a square GF(256) matrix by Gauss–Jordan elimination.

    Raises:
        FrameError: the matrix is singular (cannot happen for rows of an MDS generator).
    """
    mul = _mul_table()
    inv_of = _inverse_table()
    n = len(a)
    m = np.hstack([a.astype(np.uint8), np.eye(n, dtype=np.uint8)])
    for c in range(n):
        pivots = np.nonzero(m[c:, c])[0]
        if len(pivots) == 0:
            raise FrameError("fec.generator", c, "an invertible set of rows")
        p = c + int(pivots[0])
        m[[c, p]] = m[[p, c]]
        m[c] = mul[inv_of[m[c, c]]][m[c]]
        for r in np.nonzero(m[:, c])[0]:
            if r != c:
                m[r] ^= mul[m[r, c]][m[c]]
    return m[:, n:]
