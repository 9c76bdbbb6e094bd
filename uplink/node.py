"""The edge sender node: storage, encoding, and the protocol Sender behind one interface.

A driver (``link_sim``'s simpy processes, or :mod:`uplink.udp`) calls the node exactly as
it would call a :class:`~textboost.protocol.Sender` — ``poll_transmit``, ``receive``,
``next_timer``, ``handle_timeout`` — and the node keeps the sender fed from storage: at
most ``max_in_flight`` images are handed to the protocol at a time, so images still in
storage stay subject to the drop policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from textboost.bitstream.container import Container
from textboost.protocol import (
    MAX_BUNDLE_ID,
    BundleAcked,
    BundleFailed,
    BundleState,
    Event,
    LinkConfig,
    Sender,
)
from textboost.settings.queue import DEFAULT_MAX_IN_FLIGHT
from uplink.encode import EncodePipeline
from uplink.sources import Capture
from uplink.store import DropPolicy, DropRecord, StoreAndForward, StoredImage

__all__ = ["ImageRecord", "UplinkNode"]


@dataclass(slots=True)
class ImageRecord:
    """One image's life on the edge node."""

    image_id: str
    size_bytes: int
    stored_s: float
    bundle_id: int | None = None
    submitted_s: float | None = None
    acked_s: float | None = None
    failed_s: float | None = None
    dropped: DropRecord | None = None


class UplinkNode:
    """Edge node. See the module docstring.

    Args:
        config: the link protocol configuration.
        epoch: the sender's epoch: never the same twice under one key (see
            :mod:`textboost.protocol.replay`); bundle ids count from 0 within it.
        storage_bytes: store-and-forward capacity (waiting plus in-flight images).
        drop_policy: which waiting image goes when storage is full.
        max_in_flight: images handed to the protocol at once (with
            ``policy="priority_interleave"`` this is how many images' headers can overtake
            the groups of the image in front).
        pipeline: the encode pipeline used by :meth:`capture` (None: only
            :meth:`store` of ready `.tbx` bytes).
    """

    def __init__(
        self,
        config: LinkConfig,
        *,
        storage_bytes: int = 1 << 20,
        drop_policy: DropPolicy = "oldest",
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        pipeline: EncodePipeline | None = None,
        epoch: int = 0,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight {max_in_flight}: must be >= 1")
        self.sender = Sender(config, epoch=epoch)
        self.storage = StoreAndForward(storage_bytes, drop_policy)
        self.max_in_flight = max_in_flight
        self.pipeline = pipeline
        self.images: dict[str, ImageRecord] = {}
        self.bundle_image: dict[int, str] = {}  # bundle id -> image id, for the ground
        self._next_bundle = 0

    # --- input --------------------------------------------------------------------------

    def capture(self, capture: Capture, now: float) -> list[DropRecord]:
        """Encode a captured image (through the cache) and store it.

        Returns:
            Drop records caused by storing it.
        Raises:
            RuntimeError: the node has no encode pipeline.
            ValueError: the file is not a readable image or `.tbx`.
        """
        if self.pipeline is None:
            raise RuntimeError("this UplinkNode has no encode pipeline; use store()")
        enc = self.pipeline.encode(capture.path)
        return self.store(capture.image_id, enc.data, now, capture.priority)

    def store(self, image_id: str, data: bytes, now: float, priority: int = 0) -> list[DropRecord]:
        """Store an encoded `.tbx` stream for sending.

        An image whose bundle failed (no FIN after the retries) may be stored again: the
        field service retries it under a new bundle id.

        Raises:
            ValueError: duplicate image id (not failed), or ``data`` is not a valid `.tbx`.
        """
        old = self.images.get(image_id)
        if old is not None and old.failed_s is None:
            raise ValueError(f"image_id {image_id!r}: already stored")
        Container.parse(data)  # refuse a corrupt stream now, not at the ground
        self.images[image_id] = ImageRecord(image_id, len(data), now)
        drops = self.storage.push(StoredImage(image_id, data, now, priority))
        for d in drops:
            self.images[d.image_id].dropped = d
        return drops

    # --- the Sender interface -----------------------------------------------------------

    def _feed(self, now: float) -> None:
        while len(self.sender.active_bundles) < self.max_in_flight:
            img = self.storage.pop_next()
            if img is None:
                return
            bundle_id = self._allocate_bundle_id()
            # priority classes: the section index (header and text, z, y groups in order)
            self.sender.submit(bundle_id, Container.parse(img.data).to_sections(), now)
            rec = self.images[img.image_id]
            rec.bundle_id, rec.submitted_s = bundle_id, now
            self.bundle_image[bundle_id] = img.image_id

    def _allocate_bundle_id(self) -> int:
        active = set(self.sender.active_bundles)
        while True:
            bundle_id = self._next_bundle  # 32 bits per epoch: never wraps in practice
            self._next_bundle = (bundle_id + 1) & MAX_BUNDLE_ID
            if bundle_id not in active:
                return bundle_id

    def poll_transmit(self, now: float, budget_bytes: int | None = None) -> list[bytes]:
        """As :meth:`Sender.poll_transmit`, after moving stored images into the protocol."""
        self._feed(now)
        frames = self.sender.poll_transmit(now, budget_bytes)
        self._settle_one_way(now)
        return frames

    def receive(self, data: bytes, now: float) -> list[Event]:
        """As :meth:`Sender.receive`; frees storage of acknowledged images."""
        return self._settle(self.sender.receive(data, now))

    def next_timer(self) -> float | None:
        return self.sender.next_timer()

    def handle_timeout(self, now: float) -> list[Event]:
        return self._settle(self.sender.handle_timeout(now))

    def _settle(self, events: list[Event]) -> list[Event]:
        for e in events:
            rec = self.images[self.bundle_image[e.bundle_id]]
            if isinstance(e, BundleAcked):
                rec.acked_s = e.time_s
            elif isinstance(e, BundleFailed):
                rec.failed_s = e.time_s
            self.storage.release(rec.image_id)
        return events

    def _settle_one_way(self, now: float) -> None:
        """With ``arq="none"`` a bundle is done once sent: free its storage."""
        for image_id in list(self.storage.in_flight):
            bundle_id = self.images[image_id].bundle_id
            if bundle_id is not None and self.sender.state(bundle_id) is BundleState.DONE:
                self.storage.release(image_id)

    @property
    def idle(self) -> bool:
        """Nothing stored, nothing in flight."""
        return not self.storage.waiting and not self.sender.active_bundles
