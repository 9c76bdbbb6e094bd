"""The protocol's frames in MAVLink 2 ``TUNNEL`` messages (id 385), so they share a drone's
telemetry radio with the autopilot's traffic and pass through mavlink-router or MAVProxy.

Each frame is one TUNNEL message: ``payload_type`` a private code (>= 32768, the range
MAVLink leaves to local use; default :data:`DEFAULT_PAYLOAD_TYPE`), ``payload_length`` the
frame's length, at most 128 bytes (so the protocol's MTU is 128 at most), addressed by
system/component id: the vehicle's end is its onboard computer
(``MAV_COMP_ID_ONBOARD_COMPUTER``, 191), the ground's a component of the ground station's
system. Both ends send a HEARTBEAT every second, as every MAVLink component does, so that
routers learn where each id lives and forward the addressed TUNNEL messages to it.

Anything else on the link — the autopilot's telemetry, other TUNNEL payload types, other
system or component ids, damaged or wrongly signed messages — is refused and counted in
``stats.foreign`` by reason; only TUNNEL messages of our payload type, from the peer's id,
to ours, reach the protocol.

Optional MAVLink 2 message signing (a 32-byte shared secret; 48-bit timestamps in 10 µs
since 2015 that must grow per (link id, system, component) stream: MAVLink's own replay
protection, beside the protocol's HMAC and window). With a key, unsigned or badly signed
TUNNEL messages are refused; other unsigned traffic (the autopilot's) is read only to be
counted. pymavlink records a stream's timestamp before it checks the signature, so one
forged message with a far-future timestamp would lock the real stream out; the parser here
checks the signature first.

The byte I/O is pymavlink's ``mavutil`` (connection strings ``udpin:HOST:PORT``,
``udpout:HOST:PORT``, ``tcp:HOST:PORT``, ``tcpin:HOST:PORT``, a serial device
``/dev/ttyUSB0,57600``); the framing is its MAVLink 2 ``common`` dialect, used directly so
that no process-wide dialect switch is needed.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any

from textboost.field.transport import FdWaiter, TransportStats

__all__ = [
    "DEFAULT_PAYLOAD_TYPE",
    "GROUND_ID",
    "TUNNEL_PAYLOAD_BYTES",
    "VEHICLE_ID",
    "MavlinkTransport",
    "check_endpoint",
    "tunnel_wire_bytes",
]

TUNNEL_PAYLOAD_BYTES = 128  # TUNNEL.payload: uint8_t[128]
MSG_ID_TUNNEL = 385
MSG_ID_HEARTBEAT = 0
# the MAVLink 2 frame: magic, len, incompat, compat, seq, sysid, compid, msgid (3) | payload
# | CRC (2) | signature (13: link id, 6-byte timestamp, 6-byte SHA-256 prefix)
MAVLINK2_HEADER_BYTES = 10
MAVLINK2_CRC_BYTES = 2
MAVLINK2_SIGNATURE_BYTES = 13
TUNNEL_FIELDS_BYTES = 5  # payload_type u16, target_system, target_component, payload_length
DEFAULT_PAYLOAD_TYPE = 0x8000 | 0x5442  # 'TB' in the private range (>= 32768): 54338
VEHICLE_ID = (1, 191)  # system 1 (the autopilot's SYSID_THISMAV), MAV_COMP_ID_ONBOARD_COMPUTER
GROUND_ID = (255, 25)  # the ground station's system 255, MAV_COMP_ID_USER1 (not QGC's 190)
SIGNING_EPOCH = 1420070400  # 2015-01-01T00:00:00Z: MAVLink's signing timestamps count from it

_ENDPOINT = re.compile(r"^(udpin|udpout|tcp|tcpin):([^:]+):(\d{1,5})$")


def check_endpoint(endpoint: str) -> str:
    """A pymavlink connection string this transport takes, or ValueError saying which."""
    m = _ENDPOINT.match(endpoint)
    if m is not None:
        if int(m.group(3)) > 65535 or (int(m.group(3)) == 0 and m.group(1) in ("udpout", "tcp")):
            raise ValueError(f"MAVLink endpoint {endpoint!r}: port {m.group(3)} is not 1..65535")
        return endpoint
    device, _, baud = endpoint.partition(",")
    if device.startswith("/dev/") and (not baud or baud.isdigit()):
        return endpoint
    raise ValueError(
        f"MAVLink endpoint {endpoint!r}: expected udpin:HOST:PORT, udpout:HOST:PORT, "
        "tcp:HOST:PORT, tcpin:HOST:PORT or a serial device such as /dev/ttyUSB0,57600"
    )


def tunnel_wire_bytes(frame_len: int, signed: bool = False) -> int:
    """Bytes on the air for one TUNNEL message carrying ``frame_len`` bytes (MAVLink 2
    drops trailing zero bytes of a payload; a frame ends with its CRC, so this is exact but
    for the rare frame whose last bytes are zero)."""
    sig = MAVLINK2_SIGNATURE_BYTES if signed else 0
    return MAVLINK2_HEADER_BYTES + TUNNEL_FIELDS_BYTES + frame_len + MAVLINK2_CRC_BYTES + sig


def _dialect() -> Any:
    from pymavlink.dialects.v20 import common

    return common


def _parser_class() -> type:
    common = _dialect()

    class _MAVLink(common.MAVLink):  # type: ignore[name-defined,misc]
        def check_signature(self, msgbuf: bytearray, src_system: int, src_component: int) -> bool:
            """pymavlink's check, the signature first: a forged message must not move the
            stream's timestamp."""
            h = hashlib.new("sha256")
            h.update(self.signing.secret_key)
            h.update(msgbuf[:-6])
            if h.digest()[:6] != msgbuf[-6:]:
                return False
            tlow, thigh = self.mav_sign_unpacker.unpack(msgbuf[-12:-6])
            timestamp = tlow + (thigh << 32)
            stream = (msgbuf[-13], src_system, src_component)
            last = self.signing.stream_timestamps.get(stream)
            if last is not None and timestamp <= last:
                return False  # a replay, or a stream that went back in time
            if last is None and timestamp + 60 * 100_000 < self.signing.timestamp:
                return False  # a new stream more than a minute behind our clock
            self.signing.stream_timestamps[stream] = timestamp
            self.signing.timestamp = max(self.signing.timestamp, timestamp)
            return True

    return _MAVLink


@dataclass(frozen=True, slots=True)
class MavlinkSettings:
    """One end of a MAVLink link. ``me``/``peer``: (system id, component id);
    ``signing_key``: 32 bytes (None: unsigned); ``cap_bps``: on-air bits per second the
    frames may take; ``heartbeat_s``: HEARTBEAT interval (0: none)."""

    endpoint: str
    me: tuple[int, int]
    peer: tuple[int, int]
    payload_type: int = DEFAULT_PAYLOAD_TYPE
    signing_key: bytes | None = None
    link_id: int = 0
    cap_bps: float | None = None
    heartbeat_s: float = 1.0
    baud: int = 57600

    def __post_init__(self) -> None:
        check_endpoint(self.endpoint)
        for name in ("me", "peer"):
            sysid, compid = getattr(self, name)
            if not (1 <= sysid <= 255 and 1 <= compid <= 255):
                raise ValueError(f"MAVLink {name} ({sysid}, {compid}): ids must be 1..255")
        if self.me == self.peer:
            raise ValueError(f"MAVLink me and peer are both {self.me}: give each end its own id")
        if not 32768 <= self.payload_type <= 65535:
            raise ValueError(
                f"MAVLink payload_type {self.payload_type}: expected 32768..65535 (the private "
                "range; lower codes are registered in MAV_TUNNEL_PAYLOAD_TYPE)"
            )
        if self.signing_key is not None and len(self.signing_key) != 32:
            raise ValueError(
                f"MAVLink signing key: {len(self.signing_key)} bytes, expected 32"
            )
        if not 0 <= self.link_id <= 255:
            raise ValueError(f"MAVLink link_id {self.link_id}: expected 0..255")
        if self.cap_bps is not None and self.cap_bps <= 0:
            raise ValueError(f"MAVLink cap_bps {self.cap_bps}: expected > 0")


class MavlinkTransport:
    """Frames in TUNNEL messages over a pymavlink connection (see the module docstring).

    Raises: ValueError (bad settings), OSError (the port cannot be opened)."""

    name = "mavlink"
    mtu_bytes: int | None = TUNNEL_PAYLOAD_BYTES
    MAX_READS = 256  # per receive(): a flood cannot starve the driver's timers

    def __init__(self, settings: MavlinkSettings) -> None:
        try:
            from pymavlink import mavutil
        except ImportError:
            raise ValueError(
                "the MAVLink transport needs pymavlink: pip install 'textboost-link[mavlink]'"
            ) from None

        self.settings = s = settings
        self.cap_bps = s.cap_bps
        self.stats = TransportStats()
        common = _dialect()
        self._tunnel = common.MAVLink_tunnel_message
        self._heartbeat = common.MAVLink_heartbeat_message
        self.mav = _parser_class()(None, srcSystem=s.me[0], srcComponent=s.me[1])
        self.mav.robust_parsing = True  # damaged bytes become BAD_DATA, never an exception
        if s.signing_key is not None:
            self.mav.signing.secret_key = s.signing_key
            self.mav.signing.link_id = s.link_id
            self.mav.signing.sign_outgoing = True
            self.mav.signing.timestamp = int((time.time() - SIGNING_EPOCH) * 100_000)
            # read unsigned telemetry only to count it; an unsigned TUNNEL is refused
            self.mav.signing.allow_unsigned_callback = lambda _mav, msg_id: msg_id != MSG_ID_TUNNEL
        kw: dict[str, Any] = {"source_system": s.me[0], "source_component": s.me[1]}
        if s.endpoint.startswith("tcp:"):
            kw.update(autoreconnect=True, retries=3)
        elif s.endpoint.startswith("/dev/"):
            kw.update(baud=s.baud)
        try:
            self.conn = mavutil.mavlink_connection(s.endpoint, **kw)
        except ImportError as exc:  # pyserial for a serial device
            raise ValueError(f"MAVLink endpoint {s.endpoint!r}: {exc}") from None
        self._waiter = FdWaiter()
        self._next_heartbeat = 0.0
        self._datagrams = s.endpoint.startswith("udp")  # else a byte stream (TCP, serial)

    @property
    def signed(self) -> bool:
        return self.settings.signing_key is not None

    @property
    def local_port(self) -> int:
        """The bound port of a UDP or TCP endpoint (``udpin:127.0.0.1:0`` picks one)."""
        sock = getattr(self.conn, "listen", None) or self.conn.port
        return sock.getsockname()[1]

    def fileno(self) -> int | None:
        port = getattr(self.conn, "port", None)
        if port is not None:
            return port.fileno()
        listen = getattr(self.conn, "listen", None)  # tcpin before a client connected
        return listen.fileno() if listen is not None else None

    def select(self, timeout: float) -> bool:
        if getattr(self.conn, "listen", None) is not None and self.conn.port is None:
            self.conn.recv(0)  # tcpin: accept a waiting client, then wait on it
        fd = self.fileno()
        if fd is None:
            time.sleep(timeout)
            return False
        return self._waiter.wait(fd, timeout)

    # --- out ----------------------------------------------------------------------------

    def _write(self, msg: Any) -> int:
        buf = msg.pack(self.mav)
        self.mav.seq = (self.mav.seq + 1) % 256
        try:
            written = self.conn.write(buf)
        except OSError:
            written = -1
        if written == -1:  # pymavlink's serial port reports a dead device so
            self.stats.send_errors += 1
            return 0
        return len(buf)

    def send(self, frame: bytes) -> int:
        """One frame as one TUNNEL message to the peer; returns its bytes on the air."""
        if len(frame) > TUNNEL_PAYLOAD_BYTES:
            raise ValueError(f"frame of {len(frame)} bytes: a TUNNEL message carries 128")
        payload = frame.ljust(TUNNEL_PAYLOAD_BYTES, b"\0")
        peer = self.settings.peer
        msg = self._tunnel(peer[0], peer[1], self.settings.payload_type, len(frame), payload)
        n = self._write(msg)
        if n:
            self.stats.frames_sent += 1
            self.stats.wire_bytes_sent += n
        return n

    def confirm(self, frame: bytes) -> None:
        """Nothing to learn: the peer is the configured system/component id."""

    def wire_bytes(self, frame_len: int) -> int:
        return tunnel_wire_bytes(frame_len, self.signed)

    def tick(self, now: float) -> None:
        """A HEARTBEAT every ``heartbeat_s`` (routers learn our id from it)."""
        every = self.settings.heartbeat_s
        if every <= 0 or now < self._next_heartbeat:
            return
        self._next_heartbeat = now + every
        common = _dialect()
        kind = common.MAV_TYPE_ONBOARD_CONTROLLER if self.settings.me[1] == 191 else (
            common.MAV_TYPE_GCS
        )
        msg = self._heartbeat(kind, common.MAV_AUTOPILOT_INVALID, 0, 0,
                              common.MAV_STATE_ACTIVE, 3)  # fmt: skip
        if self._write(msg):
            self.stats.other_sent += 1

    # --- in -----------------------------------------------------------------------------

    def receive(self) -> list[bytes]:
        """Our frames among the messages waiting now; the rest counted in ``stats.foreign``."""
        frames: list[bytes] = []
        for _ in range(self.MAX_READS):
            try:
                data = self.conn.recv(65536)
            except OSError:
                self.stats.foreign["io_error"] += 1
                break
            if not data:  # b"" or "" (pymavlink's "nothing waiting")
                break
            self.stats.wire_bytes_received += len(data)
            frames += self.feed(bytes(data))
            if self._datagrams:
                self._end_datagram()
        return frames

    def _end_datagram(self) -> None:
        """A datagram holds whole messages: a partial one at its end is damage, not the
        start of something the next datagram completes (a bad length byte would otherwise
        swallow the messages after it)."""
        mav = self.mav
        if mav.buf_len() > 0:
            self.stats.foreign["bad_data"] += 1
        mav.buf, mav.buf_index = bytearray(), 0
        mav.expected_length = _dialect().HEADER_LEN_V1 + 2  # the parser's idle state

    def feed(self, data: bytes) -> list[bytes]:
        """Parse received bytes (any split: datagrams or a serial stream) into our frames."""
        frames = []
        for msg in self.mav.parse_buffer(data) or ():
            frame, reason = self._classify(msg)
            if frame is not None:
                self.stats.frames_received += 1
                frames.append(frame)
            else:
                self.stats.foreign[reason] += 1
        return frames

    def _classify(self, msg: Any) -> tuple[bytes | None, str]:
        msg_id = msg.get_msgId()
        if msg.get_type() == "BAD_DATA":
            return None, "signature" if "signature" in str(msg.reason) else "bad_data"
        if msg_id != MSG_ID_TUNNEL:
            return None, "heartbeat" if msg_id == MSG_ID_HEARTBEAT else "other_message"
        s = self.settings
        if msg.payload_type != s.payload_type:
            return None, "payload_type"
        if (msg.get_srcSystem(), msg.get_srcComponent()) != s.peer:
            return None, "source"
        if msg.target_system != s.me[0] or msg.target_component not in (s.me[1], 0):
            return None, "target"
        if msg.payload_length > TUNNEL_PAYLOAD_BYTES:
            return None, "length"
        if self.signed and not msg._signed:  # the callback refuses these; never rely on it
            return None, "signature"
        return bytes(msg.payload[: msg.payload_length]), ""

    def close(self) -> None:
        self._waiter.close()
        self.conn.close()
