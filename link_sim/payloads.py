"""Synthetic `.tbx` payloads: real containers with random section bytes, for studying the
link without the codec (``--synthetic``)."""

from __future__ import annotations

import hashlib

import numpy as np

from textboost.bitstream.container import Container, Header

__all__ = ["SYNTHETIC_MODEL_ID", "synthetic_container"]

SYNTHETIC_MODEL_ID = b"SYN0"
# Share of the bytes per y group in synthetic bundles: early groups carry more.
_GROUP_SHARES = (0.30, 0.25, 0.20, 0.15, 0.10)
_Z_SHARE = 0.08


def synthetic_container(
    key: bytes, width: int, height: int, n_bytes: int, text: bytes = b""
) -> bytes:
    """A `.tbx` of about ``n_bytes`` with random z and y payloads (no decoder exists for
    them) after the text section ``text``: for studying the link alone. Deterministic in
    ``key``."""
    rng = np.random.default_rng(np.frombuffer(hashlib.sha256(key).digest(), np.uint32))
    header = Header(
        model_id=SYNTHETIC_MODEL_ID, width=width, height=height, rate=0,
        n_groups=len(_GROUP_SHARES),
    )
    overhead = len(Container(header, text=text).to_bytes()) + 5 * (len(_GROUP_SHARES) + 1)
    body = max(len(_GROUP_SHARES) + 1, n_bytes - overhead)
    z_bytes = max(1, round(body * _Z_SHARE))
    sizes = [max(1, round((body - z_bytes) * s)) for s in _GROUP_SHARES]
    blob = rng.integers(0, 256, size=z_bytes + sum(sizes), dtype=np.uint8).tobytes()
    groups, pos = [], z_bytes
    for n in sizes:
        groups.append(blob[pos : pos + n])
        pos += n
    return Container(header, text=text, z=blob[:z_bytes], groups=tuple(groups)).to_bytes()
