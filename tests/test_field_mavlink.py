"""The MAVLink 2 transport over real pymavlink endpoints on loopback: frames in TUNNEL
messages, messages lost, foreign MAVLink traffic on the same link, message signing."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("pymavlink")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymavlink.dialects.v20 import common

from downlink import DownlinkNode
from downlink.driver import FieldDownlink
from downlink.store import stored
from tests.conftest import needs_torch
from tests.field_link import GroundLoop, edge_holding
from tests.lossy_relay import LossyRelay
from tests.test_field_udp import tbx
from textboost.field.mavlink import (
    DEFAULT_PAYLOAD_TYPE,
    GROUND_ID,
    VEHICLE_ID,
    MavlinkSettings,
    MavlinkTransport,
    check_endpoint,
    tunnel_wire_bytes,
)
from textboost.field.transport import WireBucket
from textboost.protocol import LinkConfig
from uplink.driver import FieldUplink

pytestmark = pytest.mark.edge  # the vehicle's transports also run on Python 3.10

KEY = b"mavlink-signing-key-32-bytes-ok!"
assert len(KEY) == 32


def _ground(endpoint: str, key: bytes | None = None, **kw) -> MavlinkTransport:
    return MavlinkTransport(MavlinkSettings(endpoint, GROUND_ID, VEHICLE_ID, signing_key=key, **kw))


def _vehicle(endpoint: str, key: bytes | None = None, **kw) -> MavlinkTransport:
    return MavlinkTransport(MavlinkSettings(endpoint, VEHICLE_ID, GROUND_ID, signing_key=key, **kw))


def _packer(system: int, component: int, key: bytes | None = None):
    mav = common.MAVLink(None, srcSystem=system, srcComponent=component)
    if key is not None:
        mav.signing.secret_key = key
        mav.signing.sign_outgoing = True
        mav.signing.timestamp = int((time.time() - 1420070400) * 100_000)
    return mav


def _tunnel(mav, target: tuple[int, int], payload: bytes, payload_type=DEFAULT_PAYLOAD_TYPE):
    msg = mav.tunnel_encode(target[0], target[1], payload_type, len(payload),
                            payload.ljust(128, b"\0"))  # fmt: skip
    buf = msg.pack(mav)
    mav.seq = (mav.seq + 1) % 256
    return buf


class Foreign:
    """Traffic that shares the link and is not ours: the autopilot's heartbeats, TUNNEL
    messages of another payload type, from another system id, to another component, and
    bytes that are no MAVLink at all; sent to ``to`` every 20 ms, counted per kind."""

    def __init__(self, to: tuple[str, int]) -> None:
        self.to = to
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.autopilot = _packer(1, 1)
        self.intruder = _packer(7, 191)  # another vehicle's onboard computer
        self.twin = _packer(*VEHICLE_ID)  # our vehicle's id, to another ground component
        self.sent = {"heartbeat": 0, "payload_type": 0, "source": 0, "target": 0, "bad_data": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, while_alive: threading.Thread) -> Foreign:
        """Send while ``while_alive`` runs (the ground's loop), so all of it is read."""
        self._alive = while_alive
        self._thread.start()
        return self

    def _send(self, kind: str, data: bytes) -> None:
        self.sock.sendto(data, self.to)
        self.sent[kind] += 1

    def _run(self) -> None:
        rng = np.random.default_rng(5)
        ap = self.autopilot
        while not self._stop.is_set() and self._alive.is_alive():
            hb = ap.heartbeat_encode(2, 3, 0, 0, 4).pack(ap)  # a quadrotor's ArduPilot
            ap.seq = (ap.seq + 1) % 256
            self._send("heartbeat", hb)
            self._send("payload_type", _tunnel(ap, GROUND_ID, rng.bytes(60), payload_type=0))
            self._send("source", _tunnel(self.intruder, GROUND_ID, rng.bytes(60)))
            self._send("target", _tunnel(self.twin, (GROUND_ID[0], 26), rng.bytes(60)))
            self._send("bad_data", b"\xfd" + rng.bytes(40))  # a MAVLink 2 start, then noise
            time.sleep(0.02)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("kind", "loss", "key"), [("udp", 0.2, None), ("udp", 0.2, KEY), ("tcp", 0.0, KEY)]
)
def test_images_delivered_once_with_loss_and_foreign_traffic(tmp_path, kind, loss, key):
    rng = np.random.default_rng(11)
    cfg = LinkConfig(mtu_bytes=128, arq="immediate", rto_s=0.2, nak_timeout_s=0.2,
                     max_retries=40, auth_key=b"field-trial-key-0123456789")  # fmt: skip
    images = {f"img{i}.tbx": tbx(rng) for i in range(3)}
    relay = foreign = None
    late: list[bytes] = []
    if kind == "udp":
        g = _ground("udpin:127.0.0.1:0", key)
        relay = LossyRelay(("127.0.0.1", g.local_port), loss, seed=3)
        v = _vehicle(f"udpout:127.0.0.1:{relay.port}", key)
        foreign = Foreign(("127.0.0.1", g.local_port))
    else:
        port = _free_tcp_port()
        g = _ground(f"tcpin:127.0.0.1:{port}", key)
        v = _vehicle(f"tcp:127.0.0.1:{port}", key)
    with GroundLoop(cfg, g, tmp_path, timeout_s=60.0, expect_bundles=len(images)) as loop:
        if foreign is not None:
            foreign.start(while_alive=loop.thread)
        try:
            edge = edge_holding(cfg, images, max_in_flight=2)
            with FieldUplink(edge, v, rate_bps=400_000) as tx:
                assert tx.run(timeout_s=60.0)
        finally:
            loop.join()
            for part in (foreign, relay):
                if part is not None:
                    part.close()
            late = g.receive()  # what came after the ground's loop ended
    ground = loop.node
    assert not loop.thread.is_alive()
    assert ground.bundles_complete == len(images)  # each once
    for name, data in images.items():
        bundle_id = edge.images[name].bundle_id
        assert ground.results[bundle_id].complete
        assert stored(tmp_path, data).read_bytes() == data
    stats = ground.receiver.stats
    # nothing foreign reached the protocol: no frame failed its FCS, tag or window
    assert stats.dropped_corrupt == stats.dropped_auth == stats.dropped_replay == 0
    assert g.stats.frames_received == stats.frames_received + len(late)
    if foreign is not None:
        sent = dict(foreign.sent)
        assert all(sent.values())
        if key is not None:  # unsigned TUNNEL messages are refused before anything else
            sent["signature"] = sum(sent.pop(k) for k in ("payload_type", "source", "target"))
        for reason, n in sent.items():  # the vehicle's heartbeats come on top
            if reason in ("heartbeat", "bad_data"):
                assert g.stats.foreign[reason] >= n, (reason, n, g.stats.foreign)
            else:
                assert g.stats.foreign[reason] == n, (reason, n, g.stats.foreign)
    if loss:
        assert relay is not None and relay.lost["forward"] > 0
        assert edge.sender.stats.retransmitted_frames > 0
    # every frame travelled as one TUNNEL message: our framing on top of the frame bytes
    # (less the trailing zero bytes MAVLink 2 leaves out, when a CRC ends in zeros)
    framing = v.stats.frames_sent * tunnel_wire_bytes(0, key is not None)
    on_air = edge.sender.stats.on_air_bytes
    assert on_air + framing - 4 * v.stats.frames_sent <= v.stats.wire_bytes_sent
    assert v.stats.wire_bytes_sent <= on_air + framing


def test_signing_refuses_unsigned_forged_and_replayed_messages():
    g = _ground("udpin:127.0.0.1:0", KEY, heartbeat_s=0)
    try:
        signer = _packer(*VEHICLE_ID, key=KEY)
        first = _tunnel(signer, GROUND_ID, b"frame one")
        assert g.feed(first) == [b"frame one"]
        assert g.feed(first) == []  # a replay: its timestamp is not newer
        assert g.feed(_tunnel(_packer(*VEHICLE_ID), GROUND_ID, b"unsigned")) == []
        wrong = _packer(*VEHICLE_ID, key=b"x" * 32)
        wrong.signing.timestamp += 10**12  # far in the future, and a wrong key
        assert g.feed(_tunnel(wrong, GROUND_ID, b"forged")) == []
        # the forged message did not move the stream's timestamp: the real one goes on
        assert g.feed(_tunnel(signer, GROUND_ID, b"frame two")) == [b"frame two"]
        assert g.stats.foreign["signature"] == 3
        # unsigned telemetry is read only to be counted
        hb = _packer(1, 1).heartbeat_encode(2, 3, 0, 0, 4).pack(_packer(1, 1))
        assert g.feed(hb) == [] and g.stats.foreign["heartbeat"] == 1
    finally:
        g.close()


def test_settings_and_endpoints_are_checked():
    for bad in ("udp:127.0.0.1", "serial", "udpout:host:0", "tcp:h:70000", "ws://x"):
        with pytest.raises(ValueError, match="MAVLink endpoint"):
            check_endpoint(bad)
    for good in ("udpin:0.0.0.0:14550", "tcp:10.0.0.1:5760", "/dev/ttyUSB0,57600"):
        assert check_endpoint(good) == good
    with pytest.raises(ValueError, match=r"32768\.\.65535"):
        MavlinkSettings("udpin:0.0.0.0:1", GROUND_ID, VEHICLE_ID, payload_type=7)
    with pytest.raises(ValueError, match="32"):
        MavlinkSettings("udpin:0.0.0.0:1", GROUND_ID, VEHICLE_ID, signing_key=b"short")
    with pytest.raises(ValueError, match="own id"):
        MavlinkSettings("udpin:0.0.0.0:1", GROUND_ID, GROUND_ID)


def test_mtu_above_a_tunnel_message_is_refused(tmp_path):
    g = _ground("udpin:127.0.0.1:0")
    try:
        node = DownlinkNode(LinkConfig(mtu_bytes=200), out_dir=tmp_path, codec_factory=None)
        with pytest.raises(ValueError, match="at most 128"):
            FieldDownlink(node, g)
    finally:
        g.close()


def test_cap_counts_mavlink_framing():
    """Paced by a :class:`WireBucket` at 8000 bit/s, 60 simulated seconds of full frames
    put 60 kB on the air, framing included: the image traffic keeps to its cap."""
    wire = lambda n: tunnel_wire_bytes(n, signed=True)  # noqa: E731
    bucket = WireBucket(8000, wire(128), 0.0, wire)
    sent = 0
    for step in range(1, 60_001):  # 1 ms steps
        now = step / 1000
        budget = bucket.budget(now)
        while budget is not None and budget >= 128:
            bucket.spend(128)
            sent += wire(128)
            budget = bucket.budget(now)
    assert 60 * 1000 - wire(128) <= sent <= 60 * 1000 + wire(128)


_VALID = st.binary(min_size=0, max_size=128)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(_VALID, max_size=5), noise=st.lists(st.binary(max_size=80), max_size=6),
       signed=st.booleans())  # fmt: skip
def test_fuzz_tunnel_intake(frames, noise, signed):
    """Any bytes: no exception, nothing but our peer's TUNNEL payloads out; valid messages
    between noise that holds no MAVLink start byte all come through, in order."""
    key = KEY if signed else None
    g = _ground("udpin:127.0.0.1:0", key, heartbeat_s=0)
    try:
        for chunk in noise:  # raw noise, any bytes
            for f in g.feed(chunk):
                assert len(f) <= 128
    finally:
        g.close()
    g = _ground("udpin:127.0.0.1:0", key, heartbeat_s=0)
    try:
        peer = _packer(*VEHICLE_ID, key=key)
        stream = b""
        for i, f in enumerate(frames):
            clean = bytes(b for b in (noise[i] if i < len(noise) else b"") if b not in (253, 254))
            stream += clean + _tunnel(peer, GROUND_ID, f)
        got = []
        for k in range(0, len(stream), 37):  # split as a serial port would
            got += g.feed(stream[k : k + 37])
        assert got == frames
    finally:
        g.close()


def _mavlink_yaml(tmp_path, extra: str = "", mtu: str = "mtu_bytes: 120, ") -> str:
    from tests.field_harness import free_port, write_config

    config = write_config(tmp_path)
    port = free_port()
    (tmp_path / "mav.pass").write_text("correct horse battery staple\n")
    text = config.read_text().replace("mtu_bytes: 200, ", mtu)
    text += f"""
transport:
  kind: mavlink
  mavlink:
    vehicle_endpoint: udpout:127.0.0.1:{port}
    ground_endpoint: udpin:127.0.0.1:{port}
    signing_key_file: mav.pass
{extra}"""
    config.write_text(text)
    return config


def test_field_yaml_mavlink_section(tmp_path):
    from textboost.field.config import ConfigError, load_field_config

    cfg = load_field_config(_mavlink_yaml(tmp_path, mtu=""))
    assert cfg.link_config().mtu_bytes == 128  # follows from the TUNNEL payload
    assert cfg.transport.mavlink.signing_key_file == tmp_path / "mav.pass"
    with pytest.raises(ConfigError, match=r"link.mtu_bytes: 256 is more than one mavlink"):
        load_field_config(_mavlink_yaml(tmp_path, mtu="mtu_bytes: 256, "))
    capped = _mavlink_yaml(tmp_path, "    cap_share: 0.25\n    radio_bps: 64000\n")
    assert load_field_config(capped).transport.mavlink.cap == 16000
    with pytest.raises(ConfigError, match="cap_share and radio_bps together"):
        load_field_config(_mavlink_yaml(tmp_path, "    cap_share: 0.25\n"))
    text = _mavlink_yaml(tmp_path).read_text()
    (tmp_path / "f2.yaml").write_text(text.replace("    ground_endpoint:", "    ground_end:"))
    with pytest.raises(ConfigError, match=r"transport\.mavlink\.ground_endpoint: missing; add it"):
        load_field_config(tmp_path / "f2.yaml")


@needs_torch  # the services load the default (torch) codec at start
def test_field_services_over_mavlink(tmp_path):
    """``uplink serve`` and ``downlink serve`` as processes, MAVLink 2 signed, capped."""
    from tests.field_harness import services_deliver

    config = _mavlink_yaml(tmp_path, "    cap_bps: 200000\n")
    services_deliver(tmp_path, config, "m", seed=4)


def test_example_mavlink_config_loads():
    from tests.helpers import ROOT
    from textboost.field.config import load_field_config

    cfg = load_field_config(ROOT / "configs" / "field-mavlink.yaml")
    assert cfg.transport.kind == "mavlink" and cfg.transport.mavlink.cap == 16000
    assert cfg.link_config().mtu_bytes == 128 and cfg.uplink.peer is None


def test_serial_endpoints_through_a_null_modem(tmp_path):
    """pymavlink's serial ports at both ends (two pseudo-terminals joined by a thread, as a
    null-modem cable or a pair of transparent radios): a byte stream, not datagrams."""
    import os
    import selectors

    pytest.importorskip("serial")
    ptys = [os.openpty() for _ in range(2)]
    stop = threading.Event()

    def cable() -> None:
        (a, _), (b, _) = ptys
        with selectors.DefaultSelector() as sel:
            sel.register(a, selectors.EVENT_READ, b)
            sel.register(b, selectors.EVENT_READ, a)
            while not stop.is_set():
                for key, _ in sel.select(0.05):
                    try:
                        os.write(key.data, os.read(key.fd, 4096))
                    except OSError:
                        return

    wire = threading.Thread(target=cable, daemon=True)
    wire.start()
    v = _vehicle(f"{os.ttyname(ptys[0][1])},115200")
    g = _ground(f"{os.ttyname(ptys[1][1])},115200")
    cfg = LinkConfig(mtu_bytes=128, arq="immediate", rto_s=0.3, nak_timeout_s=0.3)
    images = {f"s{i}.tbx": tbx(np.random.default_rng(i)) for i in range(2)}
    try:
        with GroundLoop(cfg, g, tmp_path, timeout_s=60.0, expect_bundles=2):
            edge = edge_holding(cfg, images)
            with FieldUplink(edge, v, rate_bps=200_000) as tx:
                assert tx.run(timeout_s=60.0)
    finally:
        stop.set()
        wire.join(5)
        for master, slave in ptys:
            os.close(master)
            os.close(slave)
    for data in images.values():
        assert stored(tmp_path, data).read_bytes() == data
    assert g.stats.frames_received > 0 and not g.stats.foreign.get("bad_data")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--to", "127.0.0.1:9", "--mavlink", "udpout:127.0.0.1:9"], "one of them"),
        (["--mavlink", "udp:nowhere"], "MAVLink endpoint 'udp:nowhere': expected udpin:"),
        (["--mavlink", "udpout:127.0.0.1:9", "--mtu", "200"], "one mavlink message carries"),
        (["--mavlink", "udpout:127.0.0.1:9", "--payload-type", "7"], "32768..65535"),
        (["--mavlink", "udpout:127.0.0.1:9", "--ccsds-apid", "5"], "one transport at a time"),
        (["--to", "127.0.0.1:9", "--ccsds-time"], "give --ccsds-apid too"),
    ],
)
@needs_torch  # send checks its (default torch) codec before it opens the transport
def test_cli_transport_errors_are_one_line(tmp_path, capsys, argv, message):
    from uplink.cli import main

    (tmp_path / "a.tbx").write_bytes(tbx(np.random.default_rng(0)))
    with pytest.raises(SystemExit) as e:
        main(["send", str(tmp_path / "a.tbx"), *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
