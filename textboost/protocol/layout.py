"""Where each section of a bundle travels: segments, offsets and fragments.

Both ends compute the same layout from the descriptor and the policy. Sections go in
(class, index) order. With ``policy="fifo"`` they form one segment; with
``"priority_interleave"`` each priority class forms its own segment, so the scheduler can
send class 0 of every bundle before class 1 of any; with ``"words_first"`` class 0 forms
one segment and every other class a second one. Segment 0 opens with the descriptor.
"""

from __future__ import annotations

from dataclasses import dataclass

from textboost.protocol.frames import Descriptor

__all__ = ["Layout", "Span"]


@dataclass(frozen=True, slots=True)
class Span:
    """A section's place: segment and byte offset within it."""

    segment: int
    offset: int
    length: int

    def fragments(self, fragment_bytes: int, segment_length: int) -> range:
        """Indices of the fragments holding this section's bytes (for an empty section, the
        fragment where it would start, or none if the segment has no fragment there)."""
        first = self.offset // fragment_bytes
        if self.length == 0:
            n = -(-segment_length // fragment_bytes)
            return range(first, first + 1) if first < n else range(0)
        return range(first, (self.offset + self.length - 1) // fragment_bytes + 1)


@dataclass(frozen=True, slots=True)
class Layout:
    segment_lengths: tuple[int, ...]
    segment_classes: tuple[int, ...]
    spans: tuple[Span, ...]  # by section index
    members: tuple[tuple[int, ...], ...]  # sections per segment, in sending order

    @classmethod
    def of(cls, descriptor: Descriptor, descriptor_bytes: int, policy: str) -> Layout:
        classes = descriptor.classes
        order = sorted(range(len(classes)), key=lambda i: (classes[i], i))
        groups: list[list[int]] = []
        for i in order:
            if groups and _same_segment(policy, classes[groups[-1][-1]], classes[i]):
                groups[-1].append(i)
            else:
                groups.append([i])
        spans: dict[int, Span] = {}
        lengths = []
        for seg, members in enumerate(groups):
            pos = descriptor_bytes if seg == 0 else 0
            for i in members:
                spans[i] = Span(seg, pos, descriptor.lengths[i])
                pos += descriptor.lengths[i]
            lengths.append(pos)
        return cls(
            tuple(lengths),
            tuple(classes[g[0]] for g in groups),
            tuple(spans[i] for i in range(len(classes))),
            tuple(tuple(g) for g in groups),
        )


def _same_segment(policy: str, a: int, b: int) -> bool:
    """Do sections of classes ``a`` and ``b`` (in that order) share a segment?"""
    if policy == "fifo":
        return True
    if policy == "words_first":
        return (a == 0) == (b == 0)
    return a == b
