"""Unsigned LEB128 varints: the one encoder the `.tbx` container, its text section and the
packet protocol write with. Each reader stays with its format, which names its own errors."""

from __future__ import annotations

__all__ = ["varint", "zigzag"]


def varint(n: int) -> bytes:
    """``n`` ≥ 0 as unsigned LEB128: seven bits a byte, low first, high bit = more."""
    if n < 0:
        raise ValueError(f"varint of negative {n}")
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def zigzag(v: int) -> bytes:
    """A signed integer as the varint of its zigzag code (0, -1, 1, -2 … → 0, 1, 2, 3 …)."""
    return varint(2 * v if v >= 0 else -2 * v - 1)
