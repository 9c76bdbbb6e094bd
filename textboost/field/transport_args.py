"""The transport options of ``uplink send`` and ``downlink receive``: plain UDP (``--to`` /
``--port``), MAVLink 2 TUNNEL messages (``--mavlink ENDPOINT``) or CCSDS space packets over
UDP (``--ccsds-apid``). The same names and defaults as ``field.yaml``'s ``transport``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

from textboost.field.transport import Transport, UdpTransport
from textboost.protocol import LinkConfig

__all__ = ["add_transport_arguments", "link_mtu", "transport_from_args"]

Role = Literal["uplink", "downlink"]


def _ids(text: str) -> tuple[int, int]:
    sysid, sep, compid = text.partition(":")
    if not (sep and sysid.isdigit() and compid.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r}: expected SYSTEM:COMPONENT, e.g. 1:191")
    return int(sysid), int(compid)


def add_transport_arguments(parser: argparse.ArgumentParser) -> None:
    from textboost.field.mavlink import DEFAULT_PAYLOAD_TYPE, GROUND_ID, VEHICLE_ID

    g = parser.add_argument_group("transport (default: one frame per UDP datagram)")
    g.add_argument(
        "--mavlink", metavar="ENDPOINT",
        help="carry the frames in MAVLink 2 TUNNEL messages over this pymavlink connection: "
        "udpin:HOST:PORT, udpout:HOST:PORT, tcp:HOST:PORT, tcpin:HOST:PORT or a serial "
        "device /dev/ttyUSB0,57600 (the MTU is then 128 unless --mtu is smaller)",
    )  # fmt: skip
    g.add_argument("--vehicle-id", type=_ids, default=VEHICLE_ID, metavar="SYS:COMP",
                   help="the vehicle's MAVLink ids (1:191, the onboard computer)")
    g.add_argument("--ground-id", type=_ids, default=GROUND_ID, metavar="SYS:COMP",
                   help="the ground's MAVLink ids (255:25)")
    g.add_argument("--payload-type", type=int, default=DEFAULT_PAYLOAD_TYPE,
                   help=f"TUNNEL payload_type, 32768..65535 ({DEFAULT_PAYLOAD_TYPE})")
    g.add_argument("--mavlink-key", type=Path, metavar="FILE",
                   help="sign MAVLink 2 messages: 32 key bytes or a passphrase in FILE")
    g.add_argument("--ccsds-apid", type=int, metavar="APID",
                   help="wrap each frame in a CCSDS space packet with this APID (0..2046) "
                   "over UDP: telemetry from the vehicle, telecommands back")
    g.add_argument("--ccsds-time", action="store_true",
                   help="a CDS time code as the packets' secondary header")
    parser.set_defaults(mtu_bytes=None)  # the transport's MTU unless --mtu is given


def link_mtu(args: argparse.Namespace) -> int:
    """``--mtu``, else the largest frame the chosen transport carries (at most the
    protocol's default)."""
    if args.mtu_bytes is not None:
        return args.mtu_bytes
    from textboost.field.mavlink import TUNNEL_PAYLOAD_BYTES

    default = LinkConfig().mtu_bytes
    return min(default, TUNNEL_PAYLOAD_BYTES) if args.mavlink else default


def transport_from_args(
    args: argparse.Namespace, role: Role, bind: tuple[str, int] | None,
    peer: tuple[str, int] | None,
) -> Transport:  # fmt: skip
    """The transport the options name; ``bind``/``peer`` are the UDP addresses (unused with
    MAVLink). Raises ValueError naming the option, OSError if it cannot be opened."""
    if args.mavlink is not None and args.ccsds_apid is not None:
        raise ValueError("--mavlink and --ccsds-apid: one transport at a time")
    if args.mavlink is None and args.mavlink_key is not None:
        raise ValueError("--mavlink-key signs MAVLink messages: give --mavlink ENDPOINT too")
    if args.ccsds_apid is None and args.ccsds_time:
        raise ValueError("--ccsds-time is the space packets' time code: give --ccsds-apid too")
    if args.mavlink is not None:
        from textboost.field.mavlink import MavlinkSettings, MavlinkTransport
        from textboost.field.transport_config import mavlink_key

        key = None if args.mavlink_key is None else mavlink_key(args.mavlink_key, "--mavlink-key")
        me, other = args.vehicle_id, args.ground_id
        if role == "downlink":
            me, other = other, me
        rate = getattr(args, "rate_bps", None)
        settings = MavlinkSettings(
            args.mavlink, me, other, payload_type=args.payload_type, signing_key=key, cap_bps=rate
        )
        return MavlinkTransport(settings)
    assert bind is not None
    if args.ccsds_apid is not None:
        from textboost.field.ccsds import CcsdsSettings, CcsdsTransport

        settings = CcsdsSettings(
            telemetry=role == "uplink", apid=args.ccsds_apid, peer_apid=args.ccsds_apid,
            time_code=args.ccsds_time,
        )  # fmt: skip
        return CcsdsTransport(bind, peer, settings)
    return UdpTransport(bind, peer)
