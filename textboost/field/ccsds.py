"""The protocol's frames in CCSDS space packets (CCSDS 133.0-B-2) over UDP, one packet per
datagram, as ground segment software (Yamcs, SatNOGS, cFS's UDP telemetry and command
links) takes TM and TC packet streams: the vehicle sends telemetry packets, the ground
answers (NAK, FIN) with telecommand packets.

Each packet: version 0, type TM or TC, the secondary-header flag as configured (set: a CDS
short time code, 7 bytes, opens the data field), the APID, sequence flags "unsegmented"
(one frame is one packet), a 14-bit sequence count per APID, then the frame. Packets are
built and read with the ``spacepackets`` package. Anything else on the port — another
APID or packet type, the other secondary-header setting, a segmented packet, a length
that disagrees with the datagram — is refused and counted in ``stats.foreign``; gaps in
the peer's sequence count are counted in :attr:`CcsdsTransport.lost_packets`.
"""

from __future__ import annotations

from dataclasses import dataclass

from textboost.field.transport import Datagram, UdpTransport

__all__ = ["HEADER_BYTES", "IDLE_APID", "TIME_CODE_BYTES", "CcsdsSettings", "CcsdsTransport"]

HEADER_BYTES = 6  # the primary header
TIME_CODE_BYTES = 7  # CDS short: P-field, 16-bit day, 32-bit ms of day
IDLE_APID = 2047  # idle packets (CCSDS 133.0-B-2 §4.1.3.3.4.4)
SEQ_MODULO = 1 << 14


@dataclass(frozen=True, slots=True)
class CcsdsSettings:
    """``telemetry``: this end sends TM packets (the vehicle) and takes TC; else the other
    way round (the ground). ``apid``: our packets'; ``peer_apid``: the one we accept."""

    telemetry: bool
    apid: int
    peer_apid: int
    time_code: bool = False

    def __post_init__(self) -> None:
        for name in ("apid", "peer_apid"):
            value = getattr(self, name)
            if not 0 <= value < IDLE_APID:
                raise ValueError(f"CCSDS {name} {value}: expected 0..2046 (2047 is idle)")


class CcsdsTransport(UdpTransport):
    """Space packets over a UDP socket (see the module docstring)."""

    name = "ccsds"

    def __init__(
        self, bind: tuple[str, int], peer: tuple[str, int] | None, settings: CcsdsSettings
    ) -> None:
        try:
            from spacepackets.ccsds.spacepacket import PacketType
        except ImportError:
            raise ValueError(
                "the CCSDS transport needs spacepackets: pip install 'textboost-link[ccsds]'"
            ) from None
        super().__init__(bind, peer)
        self.settings = settings
        self._out_type = PacketType.TM if settings.telemetry else PacketType.TC
        self._in_type = PacketType.TC if settings.telemetry else PacketType.TM
        self._sec = TIME_CODE_BYTES if settings.time_code else 0
        self.seq_count = 0  # of our next packet
        self._expect: int | None = None  # the peer's next sequence count
        self.lost_packets = 0  # gaps in the peer's sequence count

    def wire_bytes(self, frame_len: int) -> int:
        return HEADER_BYTES + self._sec + frame_len

    def packet(self, frame: bytes) -> bytes:
        """``frame`` as our next space packet (counts the sequence on)."""
        from spacepackets.ccsds.spacepacket import SequenceFlags, SpacePacket, SpacePacketHeader
        from spacepackets.ccsds.time.cds import CdsShortTimestamp

        sec = CdsShortTimestamp.now().pack() if self._sec else None
        header = SpacePacketHeader(
            self._out_type, self.settings.apid, self.seq_count,
            data_len=self._sec + len(frame) - 1, sec_header_flag=bool(self._sec),
            seq_flags=SequenceFlags.UNSEGMENTED,
        )  # fmt: skip
        self.seq_count = (self.seq_count + 1) % SEQ_MODULO
        return bytes(SpacePacket(header, sec, frame).pack())

    def send(self, frame: bytes) -> int:
        if self.peer is None:
            return 0
        packet = self.packet(frame)
        try:
            self.sock.sendto(packet, self.peer)
        except OSError:
            self.stats.send_errors += 1
            return 0
        self.stats.frames_sent += 1
        self.stats.wire_bytes_sent += len(packet)
        return len(packet)

    def receive(self) -> list[bytes]:
        frames = []
        for data, addr in self.datagrams():
            self.stats.wire_bytes_received += len(data)
            frame, reason = self.unwrap(data)
            if frame is None:
                self.stats.foreign[reason] += 1
                continue
            self.stats.frames_received += 1
            frames.append(Datagram(frame, addr))  # answered once the protocol confirms it
        return frames

    def unwrap(self, data: bytes) -> tuple[bytes | None, str]:
        """The frame in one received packet, or None and why it was refused."""
        from spacepackets.ccsds.spacepacket import SequenceFlags, SpacePacketHeader

        if len(data) < HEADER_BYTES + 1:
            return None, "short"
        h = SpacePacketHeader.unpack(data)
        if h.ccsds_version != 0:
            return None, "version"
        if h.apid != self.settings.peer_apid:
            return None, "apid"
        if h.packet_type != self._in_type:
            return None, "packet_type"
        if h.sec_header_flag != bool(self._sec):
            return None, "secondary_header"
        if h.seq_flags != SequenceFlags.UNSEGMENTED:
            return None, "segmented"
        if h.packet_len != len(data) or h.data_len + 1 <= self._sec:
            return None, "length"
        if self._expect is not None and h.seq_count != self._expect:
            self.lost_packets += (h.seq_count - self._expect) % SEQ_MODULO
        self._expect = (h.seq_count + 1) % SEQ_MODULO
        return bytes(data[HEADER_BYTES + self._sec :]), ""
