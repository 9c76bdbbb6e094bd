"""Store-and-forward storage: encoded images waiting for the link, within a byte limit.

When a new image does not fit, waiting images are dropped (``"oldest"`` first, or
``"lowest_priority"`` first, oldest among equals) until it does, each with a
:class:`DropRecord`; images already handed to the protocol (in flight) are never dropped,
and an image that cannot fit even then is itself refused with a record. Nothing is
dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DropPolicy", "DropRecord", "StoreAndForward", "StoredImage"]

DropPolicy = Literal["oldest", "lowest_priority"]


@dataclass(frozen=True, slots=True)
class StoredImage:
    image_id: str
    data: bytes
    stored_s: float
    priority: int = 0  # higher = more important


@dataclass(frozen=True, slots=True)
class DropRecord:
    image_id: str
    size_bytes: int
    priority: int
    time_s: float
    reason: str


class StoreAndForward:
    """Waiting images plus the bytes of those in flight, under ``capacity_bytes``."""

    def __init__(self, capacity_bytes: int, policy: DropPolicy = "oldest") -> None:
        if capacity_bytes <= 0:
            raise ValueError(f"capacity_bytes {capacity_bytes}: must be > 0")
        if policy not in ("oldest", "lowest_priority"):
            raise ValueError(f"policy {policy!r}: expected 'oldest' or 'lowest_priority'")
        self.capacity_bytes = capacity_bytes
        self.policy = policy
        self.waiting: list[StoredImage] = []
        self.in_flight: dict[str, int] = {}  # image id -> bytes held until acked or failed
        self.dropped: list[DropRecord] = []
        # running totals of the two above (read-only outside this class), so a push costs
        # O(1) however long the backlog: summing the queue on every push made filling it O(n²)
        self._waiting_bytes = 0
        self._in_flight_bytes = 0

    @property
    def used_bytes(self) -> int:
        """Bytes of the waiting images plus those held by images in flight."""
        return self._waiting_bytes + self._in_flight_bytes

    def push(self, image: StoredImage) -> list[DropRecord]:
        """Store ``image``, dropping waiting ones if needed.

        Returns:
            The drop records this push caused (also appended to ``dropped``).
        """
        size = len(image.data)
        held = self._in_flight_bytes
        if size + held > self.capacity_bytes:
            rec = DropRecord(
                image.image_id,
                size,
                image.priority,
                image.stored_s,
                f"refused: {size} bytes do not fit {self.capacity_bytes - held} bytes of "
                "storage not held by images in flight",
            )
            self.dropped.append(rec)
            return [rec]
        out: list[DropRecord] = []
        while size + self.used_bytes > self.capacity_bytes:
            if self.policy == "oldest":
                victim = min(self.waiting, key=lambda i: i.stored_s)
            else:
                victim = min(self.waiting, key=lambda i: (i.priority, i.stored_s))
            self.waiting.remove(victim)
            self._waiting_bytes -= len(victim.data)
            out.append(
                DropRecord(
                    victim.image_id,
                    len(victim.data),
                    victim.priority,
                    image.stored_s,
                    f"storage full ({self.capacity_bytes} bytes): dropped {self.policy} "
                    f"for {image.image_id}",
                )
            )
        self.waiting.append(image)
        self._waiting_bytes += size
        self.dropped += out
        return out

    def pop_next(self) -> StoredImage | None:
        """The next image to send (highest priority, then oldest), now counted in flight."""
        if not self.waiting:
            return None
        nxt = min(self.waiting, key=lambda i: (-i.priority, i.stored_s))
        self.waiting.remove(nxt)
        size = len(nxt.data)
        self._waiting_bytes -= size
        self._in_flight_bytes += size - self.in_flight.get(nxt.image_id, 0)
        self.in_flight[nxt.image_id] = size
        return nxt

    def release(self, image_id: str) -> None:
        """Free an in-flight image's storage (delivered, or given up)."""
        self._in_flight_bytes -= self.in_flight.pop(image_id, 0)
