"""Bundle sections back into a `.tbx` container (the inverse of ``uplink.bundle``).

Section 0 is a `.tbx` holding header and text, section 1 the z stream, section 1+i y
group i. Any in-order prefix of at least two sections is a decodable container with the
groups that arrived (the codec predicts the rest).
"""

from __future__ import annotations

from textboost.codec.container import Container

__all__ = ["join_sections"]


def join_sections(sections: list[bytes]) -> Container:
    """Rebuild the container from an in-order prefix of sections.

    Returns:
        A container with header and text, z if section 1 arrived (else empty), and the
        y groups that arrived.
    Raises:
        BitstreamError: section 0 is not a valid header/text container, or more groups
            arrived than the header allows.
        ValueError: no sections.
    """
    if not sections:
        raise ValueError("join_sections: no sections (header and text missing)")
    head = Container.parse(sections[0])
    groups = tuple(sections[2:])
    if len(groups) > head.header.n_groups:
        from textboost.codec.container import BitstreamError

        raise BitstreamError(
            f"bundle: {len(groups)} y groups but the header says {head.header.n_groups}"
        )
    z = sections[1] if len(sections) > 1 else b""
    return Container(header=head.header, text=head.text, z=z, groups=groups)
