"""Replay protection: the peer's epoch and a sliding window of its packet numbers.

Each end stamps its frames with ``(epoch, packet number)``: the epoch is handed in by the
driver when it creates the :class:`~textboost.protocol.Sender` or
:class:`~textboost.protocol.Receiver`, and the packet number counts the frames sent in that
epoch, re-sent ones included. The other end keeps a :class:`ReplayWindow` over the frames
it accepted (after the FCS and the tag, so forged frames cannot move it):

- a frame of an older epoch than the newest accepted is *stale* (a replay from before a
  restart of the peer) and dropped;
- a frame of a newer epoch is the peer after a restart: the window starts again there;
- in the current epoch, a packet number seen before is a *replay* (or a duplicate), and one
  more than ``replay_window`` below the highest accepted is *too old* (reordered beyond the
  window, or replayed): both dropped.

Epochs are not bounded from above (a driver's epoch is ``max(last + 1, Unix seconds)``, so a
peer that was off for months comes back with an epoch months ahead). With a key only the
peer can make a newer epoch. Without one anyone can, and a single forged frame naming epoch
2^32-1 would make every later frame of the real peer stale, also in the persisted window.
So a keyless window *recovers*: ``recover_after`` stale-epoch frames of one older epoch, with
rising packet numbers and no frame of the current epoch accepted in between, take the window
back to that epoch (:meth:`ReplayWindow.recover`). The real peer sends long-form frames (its
HELLOs and EOFs, and every NAK and FIN) that do that within a retransmission timeout or two;
a few delayed frames of a peer's previous session do not. A keyed window never goes back.

Choosing the epoch (the driver's job, see docs/protocol.md): an epoch must never repeat under
one key (``key_id``), or frames recorded in the earlier session would be accepted again.
Use a counter kept on disk, incremented and made durable (fsync) *before* the first frame of
the new session, or ``max(last + 1, time-based value)`` with the time in seconds since a
fixed date. A receiver restarted without its window forgets which packet numbers of the
current peer epoch it has seen: persist :attr:`ReplayWindow.state` (``to_bytes``) together
with each delivered bundle, and hand it back at start (``Receiver(..., replay_state=...)``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

from textboost.protocol.errors import LocalProtocolError

__all__ = ["KEYLESS_RECOVER_AFTER", "ReplayState", "ReplayVerdict", "ReplayWindow"]

# Stale-epoch frames of one older epoch (rising packet numbers) that take a keyless window
# back to it: more than a peer's previous session leaves in flight (its last HELLO and EOF),
# few enough that the real peer's long-form frames recover the link within a timeout or two.
KEYLESS_RECOVER_AFTER = 3

ReplayVerdict = Literal["ok", "new_epoch", "stale_epoch", "replay", "too_old"]
_STATE = struct.Struct(">IQ")


@dataclass(frozen=True, slots=True)
class ReplayState:
    """What a window knows: the peer epoch, the highest packet number accepted in it, and a
    bitmap of the ``window`` numbers below it (bit k: ``top - k`` was accepted).
    ``epoch is None``: nothing accepted yet."""

    epoch: int | None = None
    top: int = -1
    seen: int = 0

    def to_bytes(self) -> bytes:
        """Serialised for the driver's store (a fresh window serialises to ``b""``)."""
        if self.epoch is None:
            return b""
        return _STATE.pack(self.epoch, self.top) + self.seen.to_bytes(
            (self.seen.bit_length() + 7) // 8, "big"
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ReplayState:
        """Raises: LocalProtocolError for bytes not made by :meth:`to_bytes`."""
        if not data:
            return cls()
        if len(data) < _STATE.size:
            raise LocalProtocolError(f"replay state of {len(data)} bytes: too short")
        epoch, top = _STATE.unpack_from(data)
        return cls(epoch, top, int.from_bytes(data[_STATE.size :], "big"))


class ReplayWindow:
    """Sliding anti-replay window over one peer's ``(epoch, packet number)``.

    :meth:`check` says what a frame would be without changing anything; :meth:`accept`
    records it (call it only for frames that passed the FCS and the tag). ``recover_after``
    (keyless links, see the module docstring): how many stale-epoch frames of one older
    epoch :meth:`recover` needs to go back to it; None: never.
    """

    def __init__(
        self, window: int, state: ReplayState | None = None, *, recover_after: int | None = None
    ) -> None:
        self.window = window
        self.recover_after = recover_after
        s = state or ReplayState()
        self.epoch, self.top = s.epoch, s.top
        self._seen = s.seen & ((1 << window) - 1)
        self._older: tuple[int, list[int]] | None = None  # stale epoch, its packet numbers

    @property
    def state(self) -> ReplayState:
        return ReplayState(self.epoch, self.top, self._seen)

    def check(self, epoch: int, pn: int) -> ReplayVerdict:
        if self.epoch is None or epoch > self.epoch:
            return "new_epoch"
        if epoch < self.epoch:
            return "stale_epoch"
        if pn > self.top:
            return "ok"
        back = self.top - pn
        if back >= self.window:
            return "too_old"
        return "replay" if self._seen >> back & 1 else "ok"

    def recover(self, epoch: int, pn: int) -> bool:
        """Note a frame :meth:`check` called ``stale_epoch`` (it passed the FCS). True once
        ``recover_after`` of them of this one epoch, with rising packet numbers, came since
        the window last accepted a frame: the caller then accepts it (:meth:`accept` takes
        the window back to ``epoch``, the counted numbers marked as seen)."""
        if self.recover_after is None:
            return False
        older = self._older
        if older is None or older[0] != epoch:
            older = self._older = (epoch, [])
        if older[1] and pn <= older[1][-1]:
            return False  # not rising: a replay or reordering, no evidence of a live peer
        older[1].append(pn)
        return len(older[1]) >= self.recover_after

    def missing(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """Runs ``(start, stop)`` of packet numbers in ``lo .. hi-1`` of the current epoch
        not accepted, as far as the window still remembers (numbers above its top count as
        missing, those below it as not)."""
        lo = max(lo, self.top - self.window + 1, 0)
        out: list[tuple[int, int]] = []
        for pn in range(lo, hi):
            if pn > self.top or not self._seen >> (self.top - pn) & 1:
                if out and out[-1][1] == pn:
                    out[-1] = (out[-1][0], pn + 1)
                else:
                    out.append((pn, pn + 1))
        return out

    def accept(self, epoch: int, pn: int) -> None:
        older, self._older = self._older, None
        if self.epoch is None or epoch != self.epoch:
            self.epoch, self.top, self._seen = epoch, pn, 1
            if older is not None and older[0] == epoch:  # recovered: the counted ones
                for p in older[1]:
                    if 0 < pn - p < self.window:
                        self._seen |= 1 << (pn - p)
        elif pn > self.top:
            shift = pn - self.top  # a jump past the window forgets it (no huge shifts)
            seen = (self._seen << shift) | 1 if shift < self.window else 1
            self._seen = seen & ((1 << self.window) - 1)
            self.top = pn
        else:
            self._seen |= 1 << (self.top - pn)
