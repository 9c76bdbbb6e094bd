"""`Parsed`: a stream as a receiver already holds it, so the pipeline parses it and reads
its words no second time.

The ground node parses a bundle's sections into a container when they land and reads the
words of the first one at once (for the live page); it hands both to
:meth:`Pipeline.receive <textboost.pipeline.api.Pipeline.receive>` with the bytes, which
stay the truth: what is hashed, stored and cached is ``data``. Light on purpose (no codec,
no torch): the node builds it before the codec is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from textboost.bitstream.container import Container
from textboost.text.words import Word

__all__ = ["Parsed"]


@dataclass(frozen=True, slots=True)
class Parsed:
    """``data``'s container and, once read, its carried words.

    ``container`` must be what ``Container.parse(data)`` gives (the node builds it from the
    sections that make up ``data``); ``words``: the text section's words at the header's
    size (``decode_words``), or None for the pipeline to read them.
    """

    data: bytes
    container: Container
    words: list[Word] | None = None
