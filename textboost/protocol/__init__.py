"""The packet protocol, sans-IO: framing, fragmentation, priorities, selective-repeat ARQ
with NAKs, Reed–Solomon erasure FEC, HMAC authentication with key ids, and replay
protection (each end's epoch and packet numbers, a sliding window at the other end).

Plain objects take bytes and times (float seconds) in and hand bytes and timer requests
out; no sockets, clocks or simulators inside. It carries opaque sections and knows no
codecs. Drivers: ``link_sim`` (simpy) and the UDP transports of ``uplink``/``downlink``.

    sender = Sender(LinkConfig(mtu_bytes=256), epoch=e)      # e: never repeated (see replay)
    sender.submit(bundle_id, sections, now)
    frames = sender.poll_transmit(now, budget_bytes)       # -> list[bytes]
    events = receiver.receive(frame, now)                  # SectionDelivered, ...
    sender.receive(nak_or_fin, now); sender.next_timer(); sender.handle_timeout(now)
"""

from textboost.protocol.config import HEADER_BYTES, MAX_BUNDLE_ID, LinkConfig
from textboost.protocol.errors import (
    AuthenticationError,
    CorruptFrameError,
    FrameError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from textboost.protocol.events import (
    BundleAcked,
    BundleDelivered,
    BundleFailed,
    Event,
    FrameDropped,
    ReceiverGaveUp,
    SectionDelivered,
    SectionProgress,
)
from textboost.protocol.frames import (
    Frame,
    FrameInfo,
    FrameType,
    decode_frame,
    encode_frame,
    frame_info,
)
from textboost.protocol.receiver import Receiver
from textboost.protocol.records import (
    ReceiverBundleRecord,
    ReceiverStats,
    SenderBundleRecord,
    SenderStats,
)
from textboost.protocol.replay import ReplayState, ReplayWindow
from textboost.protocol.sender import BundleState, Sender
from textboost.protocol.stream import StreamDeframer, slip_encode

__all__ = [
    "HEADER_BYTES",
    "MAX_BUNDLE_ID",
    "AuthenticationError",
    "BundleAcked",
    "BundleDelivered",
    "BundleFailed",
    "BundleState",
    "CorruptFrameError",
    "Event",
    "Frame",
    "FrameDropped",
    "FrameError",
    "FrameInfo",
    "FrameType",
    "LinkConfig",
    "LocalProtocolError",
    "ProtocolError",
    "Receiver",
    "ReceiverBundleRecord",
    "ReceiverGaveUp",
    "ReceiverStats",
    "RemoteProtocolError",
    "ReplayState",
    "ReplayWindow",
    "SectionDelivered",
    "SectionProgress",
    "Sender",
    "SenderBundleRecord",
    "SenderStats",
    "StreamDeframer",
    "decode_frame",
    "encode_frame",
    "frame_info",
    "slip_encode",
]
