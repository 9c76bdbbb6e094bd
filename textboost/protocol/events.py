"""Events the protocol objects hand to their driver (frozen, keyword-only, validated)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BundleAcked",
    "BundleDelivered",
    "BundleFailed",
    "Event",
    "FrameDropped",
    "ReceiverGaveUp",
    "SectionDelivered",
    "SectionProgress",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """``(epoch, bundle_id)`` names a bundle: ids are scoped by the sender's epoch."""

    bundle_id: int
    time_s: float
    epoch: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.bundle_id <= 0xFFFF_FFFF:
            raise ValueError(f"bundle_id {self.bundle_id} outside 0..2^32-1")


@dataclass(frozen=True, slots=True, kw_only=True)
class SectionDelivered(Event):
    """Receiver: section ``index`` is complete and verified, and so is every earlier section
    (sections are handed out as an in-order prefix, so a partial image can be decoded)."""

    index: int
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class SectionProgress(Event):
    """Receiver (``progress=True``): the leading bytes of section 0 held so far, each from a
    frame that passed its check; the section's own check is still to come. Sent each time
    they grow, until :class:`SectionDelivered` hands out the whole, verified section."""

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleDelivered(Event):
    """Receiver: every section of the bundle is complete and verified."""

    sections: tuple[bytes, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiverGaveUp(Event):
    """Receiver: ``max_retries`` NAKs went unanswered; what arrived stays available."""

    delivered_sections: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleAcked(Event):
    """Sender: the receiver confirmed the whole bundle (FIN)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleFailed(Event):
    """Sender: no FIN after ``max_retries`` EOF re-sends; the bundle is dropped."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameDropped:
    """Either end: a received frame was dropped (for the driver's log; also counted in
    ``stats``). ``reason``: corrupt, auth, malformed, replay, stale, memory, version. ``epoch``,
    ``pn`` and ``bundle_id`` are the frame's when it got far enough to be parsed (with a
    key, only an authentic frame has them), else None."""

    time_s: float
    reason: str
    detail: str
    epoch: int | None = None
    pn: int | None = None
    bundle_id: int | None = None

    @classmethod
    def of(cls, now: float, reason: str, detail: str, frame=None) -> FrameDropped:
        """The drop of ``frame`` (a parsed ``Frame``, or None when it never parsed)."""
        known = frame is not None
        return cls(
            time_s=now,
            reason=reason,
            detail=detail,
            epoch=frame.epoch if known else None,
            pn=frame.pn if known else None,
            bundle_id=frame.bundle_id if known else None,
        )
