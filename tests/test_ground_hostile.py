"""The ground against hostile datagrams on real loopback sockets (issue 22 items 8, 11, 15):
NAKs and FINs go to the sender of valid frames, never to a socket sending junk; an EOF
replayed after a kill -9 of the ground service is not answered again; a forged epoch saved
in a keyless ground's state does not block the real sender across restarts."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time

import numpy as np
import pytest

from downlink import DownlinkNode
from downlink.udp import UdpDownlink
from tests.field_harness import Trial, tbx, write_config
from tests.ground_service import Ground, wait_for
from textboost.bitstream.container import Container
from textboost.field.config import load_field_config
from textboost.field.eventlog import read_events
from textboost.protocol import Frame, FrameType, LinkConfig, Sender, encode_frame, frame_info


def _udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.05)
    return s


def _drain(s: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(s.recv(65535))
        except (TimeoutError, BlockingIOError):
            return out


def _exchange(cfg: LinkConfig, dest: tuple[str, int], rng: np.random.Generator,
              timeout_s: float = 30.0) -> tuple[int, int, Sender]:  # fmt: skip
    """A real Sender on one socket sends a bundle with two DATA frames held back, so the
    ground must NAK them, then FIN; a second socket sends junk (random bytes, and replays of
    frames the ground already had) after every frame. Returns (datagrams the sender got,
    datagrams the junk socket got, the sender)."""
    sender = Sender(cfg, epoch=7)
    sender.submit(0, Container.parse(tbx(rng)).to_sections(), 0.0)
    frames = sender.poll_transmit(0.0)
    data = [i for i, f in enumerate(frames) if frame_info(f).type is FrameType.DATA]
    held = set(data[1:3])
    got = 0
    sent: list[bytes] = []
    with _udp() as s, _udp() as junk:

        def spray() -> None:
            junk.sendto(rng.bytes(int(rng.integers(1, 200))), dest)
            if sent:  # a replay of what the ground already has
                junk.sendto(sent[int(rng.integers(len(sent)))], dest)

        for i, f in enumerate(frames):
            if i not in held:
                s.sendto(f, dest)
                sent.append(f)
            spray()
        t0 = time.monotonic()
        while sender.active_bundles and time.monotonic() - t0 < timeout_s:
            now = time.monotonic() - t0
            spray()
            for d in _drain(s):
                got += 1
                sender.receive(d, now)
            for f in sender.poll_transmit(now):
                s.sendto(f, dest)
                sent.append(f)
                spray()
            sender.handle_timeout(now)
        time.sleep(0.3)
        got += len(_drain(s))
        return got, len(_drain(junk)), sender


def test_the_ground_service_answers_the_sender_not_a_junk_socket(tmp_path):
    """Issue 22 item 11: with a third socket sending junk, 10 of 15 NAK/FIN went to it."""
    ground = Ground(write_config(tmp_path))
    try:
        svc = ground.svc
        got, junk_got, sender = _exchange(svc.link, ground.address, np.random.default_rng(11))
        nak, fin = svc.rx.stats.nak_frames, svc.rx.stats.fin_frames
    finally:
        ground.stop()
    assert not sender.active_bundles  # acknowledged: the FIN reached the sender
    assert nak >= 1 and fin >= 1 and got == nak + fin
    assert junk_got == 0


def test_downlink_receive_answers_the_sender_not_a_junk_socket(tmp_path):
    cfg = LinkConfig(mtu_bytes=200, arq="deferred", rto_s=0.3, nak_timeout_s=0.3,
                     auth_key=b"k" * 32)  # fmt: skip
    node = DownlinkNode(cfg, out_dir=tmp_path, codec_factory=None)
    rx = UdpDownlink(node, ("127.0.0.1", 0))
    thread = threading.Thread(target=rx.run, kwargs={"timeout_s": 40.0, "expect_bundles": 1})
    thread.start()
    try:
        got, junk_got, sender = _exchange(cfg, ("127.0.0.1", rx.port), np.random.default_rng(12))
    finally:
        thread.join(45)
        rx.close()
    stats = node.receiver.stats
    assert not sender.active_bundles and stats.nak_frames >= 1 and stats.fin_frames >= 1
    assert stats.dropped_corrupt + stats.dropped_auth > 0 and stats.dropped_replay > 0
    assert junk_got == 0 and got == stats.nak_frames + stats.fin_frames


@pytest.mark.slow
def test_an_eof_replayed_after_a_kill_9_of_the_ground_is_not_answered(tmp_path):
    """Issue 22 item 15: an EOF accepted (and answered with a FIN) after the last saved
    window was accepted again when replayed after a kill -9, and answered again. The window
    is now on disk before any FIN goes out."""
    trial = Trial(tmp_path)
    cfg = load_field_config(trial.config, need="downlink")
    link = cfg.link_config("field.yaml")
    host, port = cfg.downlink.listen.rsplit(":", 1)
    dest = (host, int(port))
    trial.start_and_wait("downlink")
    sender = Sender(link, epoch=7)
    sender.submit(0, Container.parse(tbx(np.random.default_rng(15))).to_sections(), 0.0)
    frames = sender.poll_transmit(0.0)
    eof = frames[-1]
    assert frame_info(eof).type is FrameType.EOF
    with _udp() as s:
        for f in frames[:-1]:  # the bundle whole: delivered, stored, FINed
            s.sendto(f, dest)
        wait_for(lambda: bool(_drain(s)), 30)  # the FIN on delivery
        s.sendto(eof, dest)  # accepted after the window saved with the delivery
        wait_for(lambda: bool(_drain(s)), 30)  # its FIN
        trial.kill("downlink")
        trial.start_and_wait("downlink")
        s.sendto(eof, dest)  # the replay
        time.sleep(1.5)
        answers = _drain(s)
    trial.stop_all()
    events = list(read_events(tmp_path / "downlink.jsonl"))
    assert answers == []
    drops = [e for e in events if e["event"] == "frame_dropped"]
    assert [e["reason"] for e in drops] == ["replay"]
    assert sum(e["event"] == "delivered" for e in events) == 1


KEYLESS = """
link: {{mtu_bytes: 200, arq: deferred, rto_s: 0.3, nak_timeout_s: 0.3, max_retries: 1000}}
downlink: {{listen: "127.0.0.1:{port}", out_dir: out, state_db: downlink.db,
           event_log: downlink.jsonl, decode: false}}
"""


def test_a_forged_epoch_saved_by_a_keyless_ground_does_not_block_the_sender(tmp_path):
    """Issue 22 item 8: one 14-byte HELLO naming epoch 2^32-1 was accepted, saved in the
    ground's state and made every later frame stale, across restarts, until the database was
    deleted. The keyless window now goes back to the real sender's epoch."""
    from tests.field_harness import free_port

    config = tmp_path / "field.yaml"
    config.write_text(KEYLESS.format(port=free_port()))
    ground = Ground(config)
    link = ground.svc.link
    dest = ground.address
    hello = encode_frame(Frame(type=FrameType.HELLO, bundle_id=0, epoch=0xFFFF_FFFF), link)
    assert len(hello) == 14
    with _udp() as s:
        s.sendto(hello, dest)
        wait_for(lambda: ground.svc.rx.replay_state.epoch == 0xFFFF_FFFF, 30)
        time.sleep(0.2)
        ground.stop()
        with sqlite3.connect(tmp_path / "downlink.db") as db:  # saved: the poisoned window
            saved = db.execute("SELECT value FROM meta WHERE key='replay'").fetchone()[0]
        assert int.from_bytes(saved[:4], "big") == 0xFFFF_FFFF
        ground = Ground(config)  # the restart
        try:
            sender = Sender(link, epoch=1_796_000_000)
            sender.submit(0, Container.parse(tbx(np.random.default_rng(8))).to_sections(), 0.0)
            t0 = time.monotonic()
            while sender.active_bundles and time.monotonic() - t0 < 30:
                now = time.monotonic() - t0
                for f in sender.poll_transmit(now):
                    s.sendto(f, dest)
                for d in _drain(s):
                    sender.receive(d, now)
                sender.handle_timeout(now)
            assert not sender.active_bundles  # delivered and acknowledged
            assert ground.svc.rx.replay_state.epoch == 1_796_000_000
        finally:
            ground.stop()
    events = list(read_events(tmp_path / "downlink.jsonl"))
    assert [e["epoch"] for e in events if e["event"] == "delivered"] == [1_796_000_000]


@pytest.mark.parametrize("kind", ["udp", "ccsds"])
def test_a_ground_transport_answers_only_the_confirmed_source(kind):
    """The transports' own rule, on real sockets: a datagram from a junk socket (wrapped in
    a well-formed space packet of the vehicle's APID for CCSDS) never becomes the peer; the
    source of the frame the driver confirmed does."""
    from textboost.field.ccsds import CcsdsSettings, CcsdsTransport
    from textboost.field.transport import UdpTransport

    def transport(telemetry: bool, peer=None):
        if kind == "udp":
            return UdpTransport(("127.0.0.1", 0), peer)
        return CcsdsTransport(("127.0.0.1", 0), peer, CcsdsSettings(telemetry, 5, 5))

    ground = transport(False)
    to = ("127.0.0.1", ground.port)
    vehicle, junk = transport(True, to), transport(True, to)
    try:
        vehicle.send(b"valid frame")
        junk.send(b"junk")
        time.sleep(0.1)
        frames = ground.receive()
        assert [bytes(f) for f in frames] == [b"valid frame", b"junk"]
        assert ground.send(b"nobody confirmed yet") == 0
        ground.confirm(frames[0])  # the receiver accepted the first one only
        assert ground.send(b"NAK") > 0
        time.sleep(0.1)
        assert [bytes(f) for f in vehicle.receive()] == [b"NAK"] and junk.receive() == []
    finally:
        for t in (ground, vehicle, junk):
            t.close()
