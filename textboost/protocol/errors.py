"""Protocol errors: two families, as in h11.

:class:`LocalProtocolError` means the caller misused an object (a bad config value, a
duplicate bundle id): fix the calling code. :class:`RemoteProtocolError` means bytes from
the wire were bad; :class:`FrameError` and its subclasses name the field and the value.
`Sender.receive` and `Receiver.receive` catch every :class:`RemoteProtocolError`, count it
and drop the frame: a peer can never crash a node. Any other exception is a bug.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "CorruptFrameError",
    "FrameError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "UnsyncedFrameError",
    "VersionError",
]


class ProtocolError(Exception):
    """Base class of every error this package raises on purpose."""


class LocalProtocolError(ProtocolError, ValueError):
    """The caller asked for something the protocol cannot do (bad config, bad call)."""


class RemoteProtocolError(ProtocolError):
    """Bytes from the peer that the protocol cannot accept."""


class FrameError(RemoteProtocolError):
    """A malformed frame; ``field`` names the part that is wrong and ``value`` its value."""

    def __init__(self, field: str, value: object, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"frame {field}: got {value!r}, expected {expected}")


class CorruptFrameError(FrameError):
    """The frame check sequence (CRC) does not match: the frame was damaged in transit."""


class AuthenticationError(FrameError):
    """The HMAC tag does not match: a forged or tampered frame, or the wrong key."""


class VersionError(FrameError):
    """A frame of protocol version 2 (its FCS checks with that version's seed): the other
    end runs older software; both ends of a link must be updated together."""

    def __init__(self) -> None:
        super().__init__("version", 2, "protocol version 3 (update both ends together)")


class UnsyncedFrameError(FrameError):
    """A short-form frame (no epoch on the air) before any long-form frame of its sender:
    this end cannot rebuild its epoch and packet number yet. The sender's next HELLO or
    long-form EOF carries them."""

    def __init__(self) -> None:
        super().__init__("epoch", None, "a long-form frame of the sender first (HELLO)")
