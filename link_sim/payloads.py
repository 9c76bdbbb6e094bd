"""A `.tbx` container as protocol sections, and back.

Section 0 is the container header with the text payload (a valid container on its own,
with an empty z), section 1 is z, sections 2.. are the y groups: the priority order of
the design (header and text > z > y groups). The receiver rebuilds a decodable container
from any in-order prefix that holds at least sections 0 and 1.
"""

from __future__ import annotations

import hashlib

import numpy as np

from textboost.codec.container import Container, Header

__all__ = ["SYNTHETIC_MODEL_ID", "reassemble", "split_sections", "synthetic_container"]

SYNTHETIC_MODEL_ID = b"SYN0"
# Share of the bytes per y group in synthetic bundles: early groups carry more.
_GROUP_SHARES = (0.30, 0.25, 0.20, 0.15, 0.10)
_Z_SHARE = 0.08


def split_sections(data: bytes) -> tuple[list[bytes], list[int]]:
    """Sections and priority classes (0 = header and text, 1 = z, 2+i = y group i)."""
    c = Container.parse(data)
    head = Container(c.header, text=c.text).to_bytes()
    sections = [head, c.z, *c.groups]
    return sections, list(range(len(sections)))


def reassemble(sections: list[bytes]) -> bytes | None:
    """A container from an in-order prefix of sections; None if header or z is missing."""
    if len(sections) < 2:
        return None
    head = Container.parse(sections[0])
    return Container(
        head.header, text=head.text, z=sections[1], groups=tuple(sections[2:])
    ).to_bytes()


def synthetic_container(key: bytes, width: int, height: int, n_bytes: int) -> bytes:
    """A `.tbx` of about ``n_bytes`` with random section payloads (no decoder exists for
    it): for studying the link alone. Deterministic in ``key``."""
    rng = np.random.default_rng(np.frombuffer(hashlib.sha256(key).digest(), np.uint32))
    header = Header(
        model_id=SYNTHETIC_MODEL_ID, width=width, height=height, rate=0,
        n_groups=len(_GROUP_SHARES),
    )
    overhead = len(Container(header).to_bytes()) + 5 * (len(_GROUP_SHARES) + 1)
    body = max(len(_GROUP_SHARES) + 1, n_bytes - overhead)
    z_bytes = max(1, round(body * _Z_SHARE))
    sizes = [max(1, round((body - z_bytes) * s)) for s in _GROUP_SHARES]
    blob = rng.integers(0, 256, size=z_bytes + sum(sizes), dtype=np.uint8).tobytes()
    groups, pos = [], z_bytes
    for n in sizes:
        groups.append(blob[pos : pos + n])
        pos += n
    return Container(header, z=blob[:z_bytes], groups=tuple(groups)).to_bytes()
