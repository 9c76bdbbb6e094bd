"""The SiK/MAVLink preset against its analytic budget: the image cap of the radio's air
rate, MAVLink 2 framing per TUNNEL message, the protocol's own efficiency."""

from __future__ import annotations

import copy

import pytest
import yaml

from link_sim.codec_service import CodecService
from link_sim.mission import Mission
from link_sim.scenario import parse_scenario
from tests.helpers import ROOT
from textboost.field.mavlink import TUNNEL_PAYLOAD_BYTES, tunnel_wire_bytes
from textboost.protocol import Frame, FrameType, LinkConfig, encode_frame

PRESET = yaml.safe_load((ROOT / "scenarios/sik_mavlink.yaml").read_text())
AIR_RATE_BPS = 64_000  # SiK's default AIR_SPEED
CAP_SHARE = 0.25  # the image traffic's share of it


def test_preset_is_the_cap_and_the_mavlink_framing():
    fwd = PRESET["link"]["forward"]
    cap = CAP_SHARE * AIR_RATE_BPS
    assert fwd["rate_bps"] == cap
    # the transport's real framing (the same function paces the field uplink)
    assert fwd["frame_overhead_s"] == pytest.approx(tunnel_wire_bytes(0) * 8 / cap)
    assert fwd["mtu_bytes"] == PRESET["protocol"]["mtu_bytes"] == TUNNEL_PAYLOAD_BYTES
    assert PRESET["link"]["reverse"]["frame_overhead_s"] == fwd["frame_overhead_s"]


def test_clean_link_goodput_is_the_analytic_budget(tmp_path):
    """One large image on the preset's radio without loss: the image's bits over its time
    on the air equal cap x payload / (frames + 17 bytes of MAVLink each), and that is the
    preset's frame efficiency times the tunnel's."""
    raw = copy.deepcopy(PRESET)
    for d in ("forward", "reverse"):
        raw["link"][d].update(ber=0.0)
        raw["link"][d].pop("burst")
    raw["images"]["capture"] = {"start_s": 0.0, "interval_s": 1000.0, "count": 1}
    raw["rate"] = {"policy": "bpp", "bpp": 0.5}
    raw["protocol"]["arq"] = "deferred"
    scenario = parse_scenario(raw, "test")
    res = Mission(scenario, CodecService(tmp_path / "cache", synthetic=True)).run()
    rec = res.records[0]
    assert rec.delivered_s is not None and rec.retransmission_bytes == 0
    log = res.forward.log
    sent = [i for i, t in enumerate(log.start_s) if t < rec.delivered_s]
    frames = len(sent) - 1  # the EOF after the last DATA frame is not part of the delivery
    frame_bytes = sum(log.n_bytes[i] for i in sent[:-1])
    cap = CAP_SHARE * AIR_RATE_BPS
    analytic_s = (frame_bytes + frames * tunnel_wire_bytes(0)) * 8 / cap
    airtime_s = rec.delivered_s - rec.first_byte_s - raw["link"]["forward"]["delay_s"]
    assert airtime_s == pytest.approx(analytic_s, rel=1e-9)
    goodput = rec.payload_bytes * 8 / airtime_s
    tunnel_efficiency = frame_bytes / (frame_bytes + frames * tunnel_wire_bytes(0))
    assert goodput == pytest.approx(cap * rec.payload_bytes / frame_bytes * tunnel_efficiency,
                                    rel=1e-9)  # fmt: skip
    # full 128-byte frames carry 119 bytes (9 of our header and CRC-16), and 17 bytes of
    # MAVLink framing go with each; until the receiver's first feedback echoes the sender's
    # epoch (here at the EOF) a HELLO goes every 16 frames (docs/protocol.md):
    # 16 x 119 / (16 x 145 + 12 + 17) = 0.81 of the cap
    cfg = LinkConfig(mtu_bytes=128, crc_bits=16)
    full = cfg.fragment_bytes(0)
    hello = encode_frame(Frame(type=FrameType.HELLO, bundle_id=0), cfg, long=True)
    per_hello = 16 * tunnel_wire_bytes(128) + tunnel_wire_bytes(len(hello))
    assert goodput == pytest.approx(cap * 16 * full / per_hello, rel=0.01)
