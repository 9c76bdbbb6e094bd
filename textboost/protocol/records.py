"""Per-bundle records and byte counters the drivers report (simulator, field nodes).

Byte accounting on the forward link (every byte a sender hands out lands in exactly one
bucket): ``payload`` = section bytes in first-pass DATA frames; ``header`` = everything
else in first-pass DATA frames (framing, the descriptor) plus the first EOF, and one-way the
repeated descriptor frames; ``fec`` = parity frames whole; ``retransmission`` =
retransmitted DATA frames and re-sent EOFs whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ReceiverBundleRecord", "ReceiverStats", "SenderBundleRecord", "SenderStats"]


@dataclass(slots=True)
class SenderStats:
    payload_bytes: int = 0
    header_bytes: int = 0
    fec_bytes: int = 0
    retransmission_bytes: int = 0
    frames_sent: int = 0
    retransmitted_frames: int = 0
    frames_received: int = 0  # NAK/FIN frames accepted
    dropped_corrupt: int = 0
    dropped_auth: int = 0
    dropped_malformed: int = 0
    dropped_replay: int = 0  # packet number accepted before (replay or duplicate)
    dropped_stale: int = 0  # older epoch, older than the window, or about another session
    dropped_version: int = 0  # a frame of protocol version 2

    @property
    def on_air_bytes(self) -> int:
        return self.payload_bytes + self.header_bytes + self.fec_bytes + self.retransmission_bytes

    @property
    def efficiency(self) -> float:
        """Section payload bytes / all bytes sent (1.0 would be a link with no protocol)."""
        return self.payload_bytes / self.on_air_bytes if self.on_air_bytes else 0.0


@dataclass(slots=True)
class SenderBundleRecord:
    bundle_id: int
    submitted_s: float
    section_bytes: tuple[int, ...]
    epoch: int = 0
    first_sent_s: float | None = None
    section_first_sent_s: list[float | None] = field(default_factory=list)
    section_retransmissions: list[int] = field(default_factory=list)
    first_pass_done_s: float | None = None  # every first-pass frame (and EOF) handed out
    acked_s: float | None = None
    failed_s: float | None = None
    eof_resends: int = 0
    payload_bytes: int = 0
    header_bytes: int = 0
    fec_bytes: int = 0
    retransmission_bytes: int = 0

    @property
    def on_air_bytes(self) -> int:
        return self.payload_bytes + self.header_bytes + self.fec_bytes + self.retransmission_bytes


@dataclass(slots=True)
class ReceiverStats:
    frames_received: int = 0  # accepted frames (FCS and tag good)
    bytes_received: int = 0
    dropped_corrupt: int = 0
    dropped_auth: int = 0
    dropped_malformed: int = 0
    dropped_replay: int = 0  # packet number accepted before (replay or duplicate)
    dropped_stale: int = 0  # older epoch, older than the window, or epoch not known yet
    dropped_version: int = 0  # a frame of protocol version 2
    dropped_memory: int = 0  # over receiver_memory_bytes
    duplicates: int = 0
    fec_recovered: int = 0
    section_crc_failures: int = 0
    nak_frames: int = 0
    packet_nak_frames: int = 0  # of them, NAKs of packet numbers (a words segment lost whole)
    fin_frames: int = 0
    control_bytes: int = 0  # NAK + FIN bytes on the reverse link


@dataclass(slots=True)
class ReceiverBundleRecord:
    bundle_id: int
    first_frame_s: float
    epoch: int = 0  # the sender's epoch: (epoch, bundle_id) names the bundle
    n_sections: int | None = None
    section_delivered_s: list[float | None] = field(default_factory=list)
    delivered_s: float | None = None
    naks_sent: int = 0
    gave_up_s: float | None = None

    @property
    def delivered_sections(self) -> int:
        """Length of the in-order prefix of delivered sections."""
        n = 0
        for t in self.section_delivered_s:
            if t is None:
                break
            n += 1
        return n
