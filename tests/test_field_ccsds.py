"""The CCSDS space packet transport over real UDP sockets on loopback: what goes on the
wire is read back with ``spacepackets`` itself; images arrive once through loss."""

from __future__ import annotations

import socket

import numpy as np
import pytest

pytest.importorskip("spacepackets")

from hypothesis import given, settings
from hypothesis import strategies as st
from spacepackets.ccsds.spacepacket import (
    PacketId,
    PacketType,
    SequenceFlags,
    SpacePacketHeader,
    parse_space_packets,
)
from spacepackets.ccsds.time.cds import CdsShortTimestamp

from downlink.store import stored
from tests.conftest import needs_torch
from tests.field_link import GroundLoop, edge_holding
from tests.lossy_relay import LossyRelay
from tests.test_field_udp import tbx
from textboost.field.ccsds import CcsdsSettings, CcsdsTransport
from textboost.protocol import LinkConfig
from uplink.driver import FieldUplink

pytestmark = pytest.mark.edge  # the vehicle's transports also run on Python 3.10

APID = 0x1B0


def _pair(time_code: bool, to: tuple[str, int] | None = None):
    ground = CcsdsTransport(("127.0.0.1", 0), None, CcsdsSettings(False, APID, APID, time_code))
    vehicle = CcsdsTransport(("127.0.0.1", 0), to or ("127.0.0.1", ground.port),
                             CcsdsSettings(True, APID, APID, time_code))  # fmt: skip
    return ground, vehicle


@pytest.mark.parametrize("time_code", [False, True])
def test_images_in_space_packets_through_loss(tmp_path, time_code):
    rng = np.random.default_rng(2)
    cfg = LinkConfig(mtu_bytes=200, arq="immediate", rto_s=0.2, nak_timeout_s=0.2,
                     max_retries=40)  # fmt: skip
    images = {f"img{i}.tbx": tbx(rng) for i in range(3)}
    g, _ = _pair(time_code)
    _.close()
    relay = LossyRelay(("127.0.0.1", g.port), 0.2, seed=4)
    v = CcsdsTransport(("127.0.0.1", 0), ("127.0.0.1", relay.port),
                       CcsdsSettings(True, APID, APID, time_code))  # fmt: skip
    foreign = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other = CcsdsTransport(("127.0.0.1", 0), ("127.0.0.1", g.port),
                           CcsdsSettings(True, APID + 1, APID, time_code))  # another APID
    try:
        with GroundLoop(cfg, g, tmp_path, timeout_s=60.0, expect_bundles=len(images)) as loop:
            edge = edge_holding(cfg, images, max_in_flight=2)
            other.send(b"not for us")
            foreign.sendto(b"\x00\x01", ("127.0.0.1", g.port))  # shorter than a header
            with FieldUplink(edge, v, rate_bps=400_000) as tx:
                assert tx.run(timeout_s=60.0)
    finally:
        relay.close()
        other.close()
        foreign.close()
    ground = loop.node
    for data in images.values():
        assert stored(tmp_path, data).read_bytes() == data
    assert ground.bundles_complete == len(images)
    assert g.stats.foreign["apid"] == 1 and g.stats.foreign["short"] == 1
    assert 0 < g.lost_packets <= relay.lost["forward"]  # gaps in the sequence count
    # what went on the wire, read with spacepackets itself
    sec = bool(time_code)
    tm = parse_space_packets(b"".join(relay.sniffed), [PacketId(PacketType.TM, sec, APID)])
    assert tm.num_of_found_packets() == len(relay.sniffed) == v.stats.frames_sent
    assert not tm.skipped_ranges
    counts = []
    for raw in relay.sniffed:
        h = SpacePacketHeader.unpack(raw)
        assert (h.packet_type, h.apid, h.sec_header_flag) == (PacketType.TM, APID, sec)
        assert h.seq_flags == SequenceFlags.UNSEGMENTED and h.packet_len == len(raw)
        counts.append(h.seq_count)
        if time_code:
            CdsShortTimestamp.unpack(raw[6:13])  # a valid CDS time code
    assert counts == list(range(len(counts)))  # one per packet, in order
    for raw in relay.sniffed_reverse:  # NAK and FIN: telecommands
        h = SpacePacketHeader.unpack(raw)
        assert (h.packet_type, h.apid, h.packet_len) == (PacketType.TC, APID, len(raw))


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=300), frame=st.binary(min_size=1, max_size=200),
       time_code=st.booleans())  # fmt: skip
def test_fuzz_packet_intake(data, frame, time_code):
    """Any datagram: a frame or a counted refusal, never an exception; our own packets
    give their frame back."""
    g, v = _pair(time_code)
    try:
        got, reason = g.unwrap(data)
        assert (got is None) == bool(reason)
        packet = v.packet(frame)
        assert g.unwrap(packet) == (frame, "")
        for cut in (packet[:-1], packet + b"\0"):
            assert g.unwrap(cut)[0] is None
    finally:
        g.close()
        v.close()


def test_settings_checked():
    with pytest.raises(ValueError, match=r"0\.\.2046"):
        CcsdsSettings(True, 2047, 1)


@needs_torch  # the services load the default (torch) codec at start
def test_field_services_over_ccsds(tmp_path):
    """``uplink serve`` and ``downlink serve`` as processes, field.yaml ``transport.kind:
    ccsds`` with a time code and its own telecommand APID."""
    from tests.field_harness import services_deliver, write_config

    config = write_config(tmp_path)
    config.write_text(config.read_text() + "transport:\n  kind: ccsds\n  ccsds: "
                      "{apid: 300, reverse_apid: 301, time_code: true}\n")  # fmt: skip
    services_deliver(tmp_path, config, "c", seed=6)
