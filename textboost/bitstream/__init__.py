"""The bytes format: the `.tbx` container (header, text, z and y-group sections, each with
its CRC), the capture record the header carries, varints, and the one ``BitstreamError``.
Both nodes, the codec, the text payload and the protocol's users read and write it; it
imports nothing of the method (no torch, no numpy)."""

from textboost.bitstream.capture import CaptureMeta, MetaError
from textboost.bitstream.container import BitstreamError, Container, Header, SectionKind

__all__ = ["BitstreamError", "CaptureMeta", "Container", "Header", "MetaError", "SectionKind"]
