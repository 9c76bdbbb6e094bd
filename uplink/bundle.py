"""A `.tbx` container as a protocol bundle: sections and their priority classes.

Section 0 is the container's header and text as a `.tbx` of its own (empty z, no groups:
it parses and carries the header CRC), section 1 the z stream, section 1+i y group i. The
ground rebuilds the container from any in-order prefix (``downlink.reassembly``). Classes
follow the decoding order: header+text 0, z 1, y group i 1+i.
"""

from __future__ import annotations

from textboost.codec.container import Container

__all__ = ["split_container"]


def split_container(data: bytes) -> tuple[list[bytes], list[int]]:
    """Split a `.tbx` stream into bundle sections.

    Returns:
        (sections, priority classes), one class per section.
    Raises:
        BitstreamError: ``data`` is not a valid `.tbx` stream.
    """
    c = Container.parse(data)
    head = Container(header=c.header, text=c.text).to_bytes()
    sections = [head, c.z, *c.groups]
    return sections, [min(i, 254) for i in range(len(sections))]
