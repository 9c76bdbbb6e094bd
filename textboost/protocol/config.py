"""Link configuration shared by both ends, and the overhead figures it implies.

Both ends must use equal configs: the fragment size, FEC grouping, CRC width and
authentication key are not negotiated on the air (every byte counts on a 51-byte LoRa
payload), so a mismatch shows up as CRC failures or malformed fragments, which the
receiver counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from textboost.protocol.errors import LocalProtocolError

__all__ = [
    "CONTROL_HEADER_BYTES",
    "HEADER_BYTES",
    "KEY_ID_BYTES",
    "MAX_BUNDLE_ID",
    "MAX_EPOCH",
    "MAX_FRAGMENTS",
    "MAX_PACKET_NUMBER",
    "PARITY_PREFIX_BYTES",
    "LinkConfig",
]

# The most header bytes a DATA or PARITY frame takes (protocol version 3, short form):
# type/flags u8 | packet number u16 (truncated) | bundle id varint (1..5) | segment u8 |
# fragment or group index (1..2). A bundle's fragments are sized for its own bundle id's
# varint and a 2-byte index: 7 header bytes for bundle ids below 128, 11 at most.
HEADER_BYTES = 11
# The most a long-form frame without segment and index takes (HELLO, EOF, NAK, FIN):
# type/flags u8 | epoch u32 | packet number u32 | bundle id varint (a key id u8 follows the
# epoch when frames are authenticated).
CONTROL_HEADER_BYTES = 14
KEY_ID_BYTES = 1
MAX_BUNDLE_ID = 0xFFFF_FFFF  # bundle ids are scoped by the sender's epoch and never wrap
MAX_EPOCH = 0xFFFF_FFFF
MAX_PACKET_NUMBER = 0xFFFF_FFFF
MAX_FRAGMENTS = 0x8000  # per segment: fragment (and FEC group) indices are 15-bit on the air
PARITY_PREFIX_BYTES = 2  # parity frames: parity index u8 | source frames in group u8
FEC_ROW_PREFIX_BYTES = 3  # each FEC source row: flags u8 | payload length u16
MIN_PAYLOAD_BYTES = 8  # smallest fragment payload worth a frame (and room for a NAK range)

ArqMode = Literal["immediate", "deferred", "none"]
Policy = Literal["fifo", "priority_interleave", "words_first"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkConfig:
    """Protocol parameters.

    Args:
        mtu_bytes: the largest frame the link carries (Iridium SBD 340, LoRa SF12 51).
        arq: ``"immediate"``: NAK a gap as soon as it is seen; ``"deferred"``: NAK at the
            bundle's EOF (CCSDS CFDP class 2 deferred mode); ``"none"``: one-way link, no
            reverse frames at all (use FEC).
        policy: ``"fifo"``: bundles go in submit order, each as one segment (its sections
            back to back, sharing frames); ``"priority_interleave"``: one segment per
            priority class, and the highest class of every queued bundle goes before any
            lower class; ``"words_first"``: class 0 (the header and the words) of every
            queued bundle goes first, then the rest bundle by bundle as with ``"fifo"``
            (two segments: words overtake pictures, pictures do not overtake each other).
        crc_bits: 32 (CRC-32) or 16 (CRC-16/CCITT). CRC-16 is for MTUs of a few dozen
            bytes whose radio already checks a CRC (LoRa's PHY CRC-16, SBD's checksum):
            there the protocol CRC only has to catch what slips past, and 2 bytes are 4 %
            of a 51-byte frame. The descriptor's per-section checks follow (CRC-32 or
            CRC-16/CCITT).
        rto_s: sender: silence after its last frame of a bundle before it re-sends EOF
            (which prompts the receiver to NAK or FIN). Must exceed the round trip plus
            the time the link needs to drain what the receiver NAKs.
        nak_timeout_s: receiver: time after a NAK before missing fragments are NAKed again.
        max_retries: EOF re-sends (sender) and NAK repeats (receiver) before giving up.
        fec_k: source frames per FEC group, consecutive fragments of a segment (0 = no FEC).
        fec_m: parity frames per full group; a segment's last, shorter group of n frames
            gets ``ceil(fec_m * n / fec_k)``, so any ``fec_m`` losses in a full group (and
            at least one in any group) are repaired.
        auth_key: pre-shared key for HMAC-SHA256 frame tags (None = no authentication:
            the epoch and replay window still drop duplicates and stale frames, but anyone
            can forge frames).
        key_id: which pre-shared key (0..255), carried in every authenticated frame and
            covered by its tag; a frame naming another key is dropped as forged. Give a new
            key a new id, so epochs can start again from 0 under it.
        tag_bytes: bytes of the truncated HMAC tag per frame (4..32).
        replay_window: packet numbers below the highest accepted one that may still arrive
            (reordering); older ones, and any number seen before, are dropped as replays.
        max_bundle_bytes: the largest bundle (sections plus descriptor) either end handles;
            a descriptor or fragment claiming more is dropped before anything is allocated.
        receiver_memory_bytes: the most fragment and parity bytes a receiver holds for
            bundles still being reassembled; frames beyond it are dropped and counted
            (``stats.dropped_memory``) until bundles complete or are given up.
    """

    mtu_bytes: int = 256
    arq: ArqMode = "deferred"
    policy: Policy = "words_first"
    crc_bits: Literal[16, 32] = 32
    rto_s: float = 10.0
    nak_timeout_s: float = 10.0
    max_retries: int = 8
    fec_k: int = 0
    fec_m: int = 0
    auth_key: bytes | None = None
    key_id: int = 0
    tag_bytes: int = 8
    replay_window: int = 1024
    max_bundle_bytes: int = 1 << 20
    receiver_memory_bytes: int = 16 << 20

    def __post_init__(self) -> None:
        if self.arq not in ("immediate", "deferred", "none"):
            raise LocalProtocolError(
                f"arq {self.arq!r}: expected 'immediate', 'deferred' or 'none'"
            )
        if self.policy not in ("fifo", "priority_interleave", "words_first"):
            raise LocalProtocolError(
                f"policy {self.policy!r}: expected 'fifo', 'priority_interleave' or "
                "'words_first'"
            )
        if self.crc_bits not in (16, 32):
            raise LocalProtocolError(f"crc_bits {self.crc_bits!r}: expected 16 or 32")
        if not (self.rto_s > 0 and self.nak_timeout_s > 0):
            raise LocalProtocolError(
                f"rto_s {self.rto_s} / nak_timeout_s {self.nak_timeout_s}: must be > 0"
            )
        if self.max_retries < 0:
            raise LocalProtocolError(f"max_retries {self.max_retries}: must be >= 0")
        if self.auth_key is not None and not (4 <= self.tag_bytes <= 32):
            raise LocalProtocolError(f"tag_bytes {self.tag_bytes}: expected 4..32")
        if self.auth_key is not None and len(self.auth_key) < 16:
            raise LocalProtocolError(
                f"auth_key of {len(self.auth_key)} bytes: use at least 16 random bytes"
            )
        if not 0 <= self.key_id <= 255:
            raise LocalProtocolError(f"key_id {self.key_id}: expected 0..255")
        if not 1 <= self.replay_window <= 1 << 16:
            raise LocalProtocolError(f"replay_window {self.replay_window}: expected 1..65536")
        if not 1 <= self.max_bundle_bytes <= 255 << 24:
            raise LocalProtocolError(
                f"max_bundle_bytes {self.max_bundle_bytes}: expected 1..{255 << 24}"
            )
        if self.receiver_memory_bytes < self.max_bundle_bytes:
            raise LocalProtocolError(
                f"receiver_memory_bytes {self.receiver_memory_bytes}: must hold at least one "
                f"bundle (max_bundle_bytes {self.max_bundle_bytes})"
            )
        if (self.fec_k == 0) != (self.fec_m == 0):
            raise LocalProtocolError(
                f"fec_k {self.fec_k} / fec_m {self.fec_m}: set both (FEC on) or neither"
            )
        if self.fec_k < 0 or self.fec_m < 0 or self.fec_k + self.fec_m > 255:
            raise LocalProtocolError(
                f"fec_k {self.fec_k} + fec_m {self.fec_m}: need k, m >= 0 and k + m <= 255 "
                "(Reed-Solomon over GF(256))"
            )
        if self.fragment_bytes(MAX_BUNDLE_ID) < MIN_PAYLOAD_BYTES:
            raise LocalProtocolError(
                f"mtu_bytes {self.mtu_bytes}: leaves {self.fragment_bytes(MAX_BUNDLE_ID)} "
                f"payload bytes after {self.data_overhead_bytes(MAX_BUNDLE_ID)} bytes of "
                f"framing; need at least {MIN_PAYLOAD_BYTES}"
            )
        if self.mtu_bytes - self.control_overhead_bytes < 4 + MIN_PAYLOAD_BYTES:
            raise LocalProtocolError(
                f"mtu_bytes {self.mtu_bytes}: a NAK frame ({self.control_overhead_bytes} bytes "
                f"of framing, 4 of bundle epoch) needs at least {MIN_PAYLOAD_BYTES} more"
            )
        if self.fragment_payload_bytes > 0xFFFF:
            raise LocalProtocolError(f"mtu_bytes {self.mtu_bytes}: at most 65535 payload bytes")

    @property
    def fec(self) -> bool:
        return self.fec_k > 0

    @property
    def crc_bytes(self) -> int:
        return self.crc_bits // 8

    def data_overhead_bytes(self, bundle_id: int) -> int:
        """The most framing a DATA or PARITY frame of ``bundle_id`` spends (short-form
        header with a 2-byte index, HMAC tag, CRC): its fragments are sized for it, so each
        frame fits the MTU (fragments 0..127 spend one byte less)."""
        tag = self.tag_bytes if self.auth_key is not None else 0
        id_bytes = max(1, -(-bundle_id.bit_length() // 7))  # its varint
        return HEADER_BYTES - 5 + id_bytes + tag + self.crc_bytes

    def fragment_bytes(self, bundle_id: int) -> int:
        """Section bytes per DATA frame of ``bundle_id`` (FEC reserves room so parity frames
        fit the MTU). Both ends compute it: the bundle id is on every frame."""
        fec_room = FEC_ROW_PREFIX_BYTES + PARITY_PREFIX_BYTES if self.fec_k else 0
        return self.mtu_bytes - self.data_overhead_bytes(bundle_id) - fec_room

    @property
    def frame_overhead_bytes(self) -> int:
        """Framing of a full DATA frame of bundles 0..127 (see :meth:`data_overhead_bytes`;
        ids up to 2^32 - 1 spend up to 4 bytes more)."""
        return self.data_overhead_bytes(0)

    @property
    def control_overhead_bytes(self) -> int:
        """Framing of a long-form control frame (HELLO, EOF, NAK, FIN): the receiver's NAK
        and FIN frames always carry its epoch and full packet number."""
        tag = KEY_ID_BYTES + self.tag_bytes if self.auth_key is not None else 0
        return CONTROL_HEADER_BYTES + tag + self.crc_bytes

    @property
    def fragment_payload_bytes(self) -> int:
        """Section bytes per DATA frame of bundles 0..127 (:meth:`fragment_bytes`)."""
        return self.fragment_bytes(0)

    @property
    def nominal_efficiency(self) -> float:
        """Payload / on-air bytes of a full data frame (no FEC, descriptor, EOF or loss)."""
        return self.fragment_payload_bytes / self.mtu_bytes

    def parity_frames(self, n_source: int) -> int:
        """Parity frames for an FEC group of ``n_source`` source frames."""
        return math.ceil(self.fec_m * n_source / self.fec_k) if self.fec_k else 0

    def n_fragments(self, length_bytes: int, bundle_id: int) -> int:
        """Fragments of a segment of ``length_bytes`` of ``bundle_id`` (an empty one has
        none)."""
        return -(-length_bytes // self.fragment_bytes(bundle_id))
