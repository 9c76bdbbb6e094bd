"""The one edge-queue model: how many bytes of encoded images the vehicle keeps waiting for
the link, which waiting image goes when a new one does not fit, and how many are handed to
the protocol at once. ``field.yaml``'s ``uplink`` section and a scenario's ``sender`` section
are built from :class:`EdgeQueue` (``uplink.store.StoreAndForward`` applies the policy in
both); ``uplink send`` takes ``--storage-bytes`` with the same default.

Where a surface differs, it says why: a scenario states ``storage_bytes`` (it models a given
device), so it has no default there.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from textboost.settings.load import StrictModel

__all__ = ["DEFAULT_STORAGE_BYTES", "EdgeQueue"]

DEFAULT_STORAGE_BYTES = 16 << 20


class EdgeQueue(StrictModel):
    """Store-and-forward limits of the edge sender."""

    storage_bytes: int = Field(
        DEFAULT_STORAGE_BYTES, gt=0,
        description="encoded images kept for the link (waiting plus in flight), bytes",
    )  # fmt: skip
    drop_policy: Literal["oldest", "lowest_priority"] = Field(
        "oldest", description="which waiting image goes when a new one does not fit"
    )
    max_in_flight: int = Field(
        2, ge=1, le=1000, description="images handed to the protocol at once; the rest wait"
    )
