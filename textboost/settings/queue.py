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

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "DEFAULT_STORAGE_BYTES", "EdgeQueue"]

DEFAULT_STORAGE_BYTES = 16 << 20
# A photo's words can overtake only the photos handed to the protocol (``words_first``), so
# this bounds how many photos' pictures a new photo's words wait behind: with 2, the words
# of the 3rd and 4th photo of a burst reached the page 6 and 13 s after capture plus their
# air time (benchmarks/operators_run.py, 2400 bit/s); with 16, within 2.3 s, pictures
# unchanged (29.0 → 29.2 s for the last); docs/protocol.md has the simulated sweep.
DEFAULT_MAX_IN_FLIGHT = 16


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
        DEFAULT_MAX_IN_FLIGHT, ge=1, le=1000,
        description="images handed to the protocol at once; the rest wait",
    )
