"""Events the protocol objects hand to their driver (frozen, keyword-only, validated)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BundleAcked",
    "BundleDelivered",
    "BundleFailed",
    "Event",
    "ReceiverGaveUp",
    "SectionDelivered",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    bundle_id: int
    time_s: float

    def __post_init__(self) -> None:
        if not 0 <= self.bundle_id <= 0xFFFF:
            raise ValueError(f"bundle_id {self.bundle_id} outside 0..65535")


@dataclass(frozen=True, slots=True, kw_only=True)
class SectionDelivered(Event):
    """Receiver: section ``index`` is complete and verified, and so is every earlier section
    (sections are handed out as an in-order prefix, so a partial image can be decoded)."""

    index: int
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
