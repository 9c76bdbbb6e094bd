"""The JSONL event log of the field services: one object per line, flushed per line, so a
log cut by a power loss ends at a whole line (at worst one partial last line, which
:func:`read_events` skips). ``python -m link_sim replay`` reads it.

Every line: ``{"t": unix seconds, "node": "uplink"|"downlink", "event": name, "image": id or
null, "epoch": int or null, "bundle": int or null, "bytes": int or null, ...extra}``. Event
names and their extra keys are listed in :data:`EVENTS` (docs/field.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from textboost.protocol.events import FrameDropped

__all__ = ["EVENTS", "EventLog", "read_events"]

# name -> extra keys it carries (beyond t, node, event, image, epoch, bundle, bytes)
EVENTS: dict[str, tuple[str, ...]] = {
    "restart": ("epoch",),  # a service started (its own epoch in "epoch")
    "captured": ("source",),  # uplink: an image taken from the drop folder or the intake
    "encoding": ("queued",),  # uplink: an image handed to the encoder, behind `queued` others
    "encoded": ("bpp", "sha256", "name", "encode_s", "waited_s", "queued"),  # uplink: its .tbx
    # committed to the queue; encode_s the encode itself, waited_s behind others before it
    "submitted": (),  # uplink: handed to the protocol under (epoch, bundle)
    "acked": (),  # uplink: FIN received and recorded
    "failed": ("reason",),  # uplink: no FIN after the retries; queued again
    "dropped": ("reason",),  # uplink: the queue's drop policy let a waiting image go
    "rejected": ("source", "reason"),  # uplink: a file that is no image nor .tbx
    "skipped": ("source", "reason"),  # uplink: a queued row found damaged at start
    "text": ("words",),  # downlink: the text section landed
    "group": ("group",),  # downlink: y group k decoded (a preview PNG)
    "preview_dropped": ("group", "reason", "ran_s"),  # downlink: a preview cut short or
    # skipped because the complete picture is there (ran_s: how long it had run)
    "delivered": ("sha256",),  # downlink: .tbx and record durable, FIN sent
    "duplicate": ("sha256",),  # downlink: an image already stored, FINed again, not written
    "abandoned": ("reason", "sections"),  # downlink: a bundle that cannot complete (it comes
    # again as a new bundle): its partial files removed
    "decoded": ("png",),  # downlink: the full image decoded to PNG
    "handoff": ("to", "events", "error"),  # downlink: CoT events sent to a TAK server
    "basemap": ("error",),  # downlink: the page's tile package cannot be drawn (none used)
    "frame_dropped": ("reason", "detail"),  # either: a frame dropped by the protocol
}

Node = Literal["uplink", "downlink"]


class EventLog:
    """Appends events to ``path`` (created with its folder). ``clock``: Unix seconds."""

    def __init__(
        self, path: str | Path, node: Node, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.node = node
        self.clock = clock
        self.echo: Callable[[dict[str, Any]], None] | None = None  # sees each event written
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held until close()

    def write(
        self,
        event: str,
        *,
        image: str | None = None,
        epoch: int | None = None,
        bundle: int | None = None,
        bytes: int | None = None,  # the log's key name
        **extra: Any,
    ) -> dict[str, Any]:
        """Append one event line and flush it.

        Raises: ValueError for an event name not in :data:`EVENTS`."""
        if event not in EVENTS:
            raise ValueError(f"event {event!r}: expected one of {', '.join(EVENTS)}")
        doc = {
            "t": round(self.clock(), 6),
            "node": self.node,
            "event": event,
            "image": image,
            "epoch": epoch,
            "bundle": bundle,
            "bytes": bytes,
            **extra,
        }
        self._f.write(json.dumps(doc, separators=(",", ":")) + "\n")
        self._f.flush()
        if self.echo is not None:
            self.echo(doc)
        return doc

    def drops(self, drops: Iterable[FrameDropped]) -> int:
        """Log a protocol end's ``take_drops()`` as ``frame_dropped`` events; returns how many."""
        n = 0
        for d in drops:
            self.write(
                "frame_dropped", epoch=d.epoch, bundle=d.bundle_id, reason=d.reason,
                detail=d.detail, pn=d.pn,
            )  # fmt: skip
            n += 1
        return n

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(path: str | Path) -> Iterator[dict[str, Any]]:
    """The events of a log, in order; a torn last line (power cut mid-write) is skipped.

    Raises: ValueError naming the file and line for a bad line elsewhere."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            if no == len(lines):  # the last line, not ended by a newline: torn
                return
            raise ValueError(f"{path}:{no}: not a JSON object") from None
        if not isinstance(doc, dict) or "event" not in doc:
            raise ValueError(f"{path}:{no}: expected an object with an 'event' key")
        yield doc
