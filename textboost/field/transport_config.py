"""The ``transport`` section of ``field.yaml`` (which radio carries the frames: plain UDP,
MAVLink 2 TUNNEL messages, CCSDS space packets over UDP) and the one function that opens a
service's transport from the loaded config. Both ends read the same section; each takes
its own side of it (the vehicle's endpoint and id, or the ground's)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from textboost.field.transport import Transport, UdpTransport
from textboost.field.udp import parse_host_port

__all__ = [
    "CcsdsSection",
    "MavlinkSection",
    "TransportSection",
    "mavlink_key",
    "open_transport",
]

Role = Literal["uplink", "downlink"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _endpoint(value: str | None) -> str | None:
    if value is not None:
        from textboost.field.mavlink import check_endpoint

        check_endpoint(value)
    return value


def mavlink_key(path: Path, where: str) -> bytes:
    """The 32-byte signing key in ``path``: the file's bytes if it holds exactly 32, else
    SHA-256 of its text (a passphrase, as MAVProxy's ``signing setup`` and Mission Planner
    derive it). Raises ValueError naming ``where``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{where}: cannot read {path} ({exc.strerror})") from None
    if len(data) == 32:
        return data
    text = data.strip()
    if len(text) < 8:
        raise ValueError(
            f"{where}: {path} holds {len(text)} bytes; expected 32 key bytes or a passphrase "
            "of 8 characters or more"
        )
    return hashlib.sha256(text).digest()


class MavlinkSection(_Section):
    """MAVLink 2 TUNNEL transport (docs/field.md, textboost/field/mavlink.py)."""

    vehicle_endpoint: str  # the vehicle's pymavlink connection string (to mavlink-router, ...)
    ground_endpoint: str  # the ground's
    vehicle_system: int = Field(1, ge=1, le=255)  # the autopilot's SYSID_THISMAV
    vehicle_component: int = Field(191, ge=1, le=255)  # MAV_COMP_ID_ONBOARD_COMPUTER
    ground_system: int = Field(255, ge=1, le=255)
    ground_component: int = Field(25, ge=1, le=255)  # MAV_COMP_ID_USER1 (QGC is 190)
    payload_type: int = Field(0x8000 | 0x5442, ge=32768, le=65535)  # the private range
    signing_key_file: Path | None = None  # 32 bytes, or a passphrase (SHA-256 of it)
    link_id: int = Field(0, ge=0, le=255)
    cap_bps: float | None = Field(None, gt=0)  # on-air bit/s the image frames may take
    cap_share: float | None = Field(None, gt=0, le=1)  # or this share of radio_bps
    radio_bps: float | None = Field(None, gt=0)  # the radio's air rate (SiK: 64000)
    heartbeat_s: float = Field(1.0, ge=0)  # 0: send none (routers then learn nothing)
    baud: int = Field(57600, gt=0)  # serial endpoints without ",BAUD"

    _ep = field_validator("vehicle_endpoint", "ground_endpoint")(_endpoint)

    @model_validator(mode="after")
    def _cap(self) -> MavlinkSection:
        if (self.cap_share is None) != (self.radio_bps is None):
            raise ValueError("cap_share and radio_bps together (the share of the radio's rate)")
        if self.cap_share is not None and self.cap_bps is not None:
            raise ValueError("either cap_bps or cap_share with radio_bps, not both")
        if (self.vehicle_system, self.vehicle_component) == (
            self.ground_system, self.ground_component
        ):  # fmt: skip
            raise ValueError("vehicle and ground with the same system and component id")
        return self

    @property
    def cap(self) -> float | None:
        if self.cap_share is not None and self.radio_bps is not None:
            return self.cap_share * self.radio_bps
        return self.cap_bps


class CcsdsSection(_Section):
    """CCSDS space packets over UDP (textboost/field/ccsds.py): telemetry packets from the
    vehicle, telecommand packets back."""

    apid: int = Field(0x1B0, ge=0, le=2046)  # 2047 is the idle APID
    reverse_apid: int | None = Field(None, ge=0, le=2046)  # telecommands (default: apid)
    time_code: bool = False  # a CDS time code as secondary header (flag set) on each packet


class TransportSection(_Section):
    kind: Literal["udp", "mavlink", "ccsds"] = "udp"
    mavlink: MavlinkSection | None = None
    ccsds: CcsdsSection = CcsdsSection()

    @model_validator(mode="after")
    def _kind(self) -> TransportSection:
        if self.kind == "mavlink" and self.mavlink is None:
            raise ValueError("a mavlink section with kind mavlink (its endpoints at least)")
        return self

    @property
    def mtu_bytes(self) -> int | None:
        from textboost.field.mavlink import TUNNEL_PAYLOAD_BYTES

        return TUNNEL_PAYLOAD_BYTES if self.kind == "mavlink" else None


def open_transport(config: Any, role: Role, source: str = "field.yaml") -> Transport:
    """The transport of one service (``role``) from a loaded ``FieldConfig``.

    Raises: ValueError naming the config key (bad key file), OSError (cannot bind/open)."""
    t: TransportSection = config.transport
    if t.kind == "mavlink":
        from textboost.field.mavlink import MavlinkSettings, MavlinkTransport

        m = t.mavlink
        assert m is not None
        key = None
        if m.signing_key_file is not None:
            key = mavlink_key(m.signing_key_file, f"{source}: transport.mavlink.signing_key_file")
        vehicle = (m.vehicle_system, m.vehicle_component)
        ground = (m.ground_system, m.ground_component)
        me, peer = (vehicle, ground) if role == "uplink" else (ground, vehicle)
        endpoint = m.vehicle_endpoint if role == "uplink" else m.ground_endpoint
        settings = MavlinkSettings(
            endpoint, me, peer, payload_type=m.payload_type, signing_key=key,
            link_id=m.link_id, cap_bps=m.cap, heartbeat_s=m.heartbeat_s, baud=m.baud,
        )  # fmt: skip
        return MavlinkTransport(settings)
    if role == "uplink":
        up = config.uplink
        bind = parse_host_port(up.bind, any_port=True)
        peer = parse_host_port(up.peer)
    else:
        bind, peer = parse_host_port(config.downlink.listen), None
    if t.kind == "ccsds":
        from textboost.field.ccsds import CcsdsSettings, CcsdsTransport

        c = t.ccsds
        reverse = c.apid if c.reverse_apid is None else c.reverse_apid
        settings = CcsdsSettings(
            telemetry=role == "uplink", apid=c.apid if role == "uplink" else reverse,
            peer_apid=reverse if role == "uplink" else c.apid, time_code=c.time_code,
        )  # fmt: skip
        return CcsdsTransport(bind, peer, settings)
    return UdpTransport(bind, peer)
