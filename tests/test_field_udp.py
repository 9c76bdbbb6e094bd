"""Field mode: the real Sender and Receiver over a real UDP socket pair on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from downlink import DownlinkNode
from downlink.store import stored
from downlink.udp import UdpDownlink
from tests.conftest import needs_torch
from textboost.bitstream.container import Container, Header
from textboost.protocol import LinkConfig
from uplink import UplinkNode
from uplink.udp import UdpUplink, parse_host_port

pytestmark = pytest.mark.edge


def tbx(rng: np.random.Generator, n_groups: int = 3) -> bytes:
    header = Header(model_id=b"TST1", width=64, height=64, rate=500, n_groups=n_groups)
    groups = tuple(rng.bytes(int(n)) for n in rng.integers(100, 700, size=n_groups))
    return Container(header=header, text=b"EXIT 12", z=rng.bytes(40), groups=groups).to_bytes()


class LossyUplink(UdpUplink):
    """Drops a seeded share of outgoing datagrams before the socket (the network here is
    loopback, which never loses anything)."""

    def __init__(self, *args, loss: float, rng: np.random.Generator, **kw) -> None:
        super().__init__(*args, **kw)
        real = self.transport.sock

        class _Sock:
            def __getattr__(self, name):
                return getattr(real, name)

            def sendto(self, data, addr):
                if rng.random() >= loss:
                    real.sendto(data, addr)

        self.transport.sock = _Sock()


@pytest.mark.parametrize("loss", [0.0, 0.2])
def test_udp_loopback_transfer(tmp_path, loss):
    rng = np.random.default_rng(42)
    cfg = LinkConfig(
        mtu_bytes=200,
        arq="immediate",
        rto_s=0.2,
        nak_timeout_s=0.2,
        max_retries=20,
        auth_key=b"field-trial-key-0123456789",
    )
    images = {f"img{i}.tbx": tbx(rng) for i in range(3)}
    ground = DownlinkNode(cfg, out_dir=tmp_path, codec_factory=None)
    rx = UdpDownlink(ground, ("127.0.0.1", 0))
    thread = threading.Thread(
        target=rx.run, kwargs={"timeout_s": 20.0, "expect_bundles": len(images)}
    )
    thread.start()
    try:
        edge = UplinkNode(cfg, max_in_flight=2)
        for name, data in images.items():
            edge.store(name, data, 0.0)
        remote = parse_host_port(f"127.0.0.1:{rx.port}")
        with LossyUplink(edge, remote, rate_bps=400_000, loss=loss, rng=rng) as tx:
            assert tx.run(timeout_s=20.0)
    finally:
        thread.join(timeout=30.0)
        rx.close()
    assert not thread.is_alive()
    for name, data in images.items():
        bundle_id = edge.images[name].bundle_id
        res = ground.results[bundle_id]
        assert res.complete
        assert Path(res.tbx_path) == stored(tmp_path, data)
        assert stored(tmp_path, data).read_bytes() == data
        assert edge.images[name].acked_s is not None
    if loss:
        assert edge.sender.stats.retransmitted_frames > 0


@needs_torch  # the nodes' default backend; torch-free: tests/test_node_backends.py
@pytest.mark.parametrize("transport", ["udp", "mavlink", "ccsds"])
def test_cli_pair_over_udp(tmp_path, transport):
    """``python -m downlink receive`` and ``python -m uplink send`` as two processes, frames
    in UDP datagrams, MAVLink 2 TUNNEL messages or CCSDS space packets."""
    import json
    import socket
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    rng = np.random.default_rng(3)
    src = tmp_path / "outbox"
    src.mkdir()
    files = {f"cap{i}.tbx": tbx(rng) for i in range(2)}
    for name, data in files.items():
        (src / name).write_bytes(data)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    link = ["--mtu", "120", "--arq", "deferred", "--rto-s", "0.3", "--nak-timeout-s", "0.3"]
    at_ground = ["--bind", "127.0.0.1", "--port", str(port)]
    at_edge = ["--to", f"127.0.0.1:{port}"]
    if transport == "mavlink":
        pytest.importorskip("pymavlink")
        at_ground, at_edge = (["--mavlink", f"{m}:127.0.0.1:{port}"] for m in ("udpin", "udpout"))
    elif transport == "ccsds":
        pytest.importorskip("spacepackets")
        ccsds = ["--ccsds-apid", "432", "--ccsds-time"]
        at_ground, at_edge = [*at_ground, *ccsds], [*at_edge, *ccsds]
    ground = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "downlink",
            "receive",
            *at_ground,
            "--out",
            str(tmp_path / "rx"),
            "--expect",
            "2",
            "--timeout-s",
            "30",
            "--no-decode",
            "--json",
            *link,
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        edge = subprocess.run(
            [
                sys.executable,
                "-m",
                "uplink",
                "send",
                str(src),
                *at_edge,
                "--timeout-s",
                "30",
                "--json",
                "--manifest",
                str(tmp_path / "sent.json"),
                *link,
            ],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )
        out, err = ground.communicate(timeout=60)
    finally:
        ground.kill()
    assert edge.returncode == 0, edge.stderr
    assert ground.returncode == 0, err
    sent = json.loads(edge.stdout)
    assert all(img["acked_s"] is not None for img in sent["images"])
    manifest = json.loads((tmp_path / "sent.json").read_text())
    results = json.loads(out)["results"]
    assert len(results) == 2 and all(r["complete"] for r in results)
    assert sent["transport"]["frames_sent"] >= json.loads(out)["transport"]["frames_received"] > 0
    for r in results:
        original = Path(manifest[str(r["bundle_id"])]).read_bytes()
        assert Path(r["tbx_path"]).read_bytes() == original


def test_udp_sends_while_encoding_and_reports_bad_images(tmp_path):
    """Captures are encoded on a worker thread and sent as they are ready; an unreadable
    image is reported by name and the others still go."""
    from uplink import Capture, EncodePipeline, FixedRate

    rng = np.random.default_rng(5)
    cfg = LinkConfig(mtu_bytes=200, rto_s=0.2, nak_timeout_s=0.2)
    good = {}
    for i in range(2):
        path = tmp_path / f"cap{i}.tbx"
        path.write_bytes(tbx(rng))
        good[path.name] = path.read_bytes()
    bad = tmp_path / "broken.tbx"
    bad.write_bytes(b"TB garbage")
    captures = [
        Capture(tmp_path / "cap0.tbx", 0.0),
        Capture(bad, 0.05),
        Capture(tmp_path / "cap1.tbx", 0.1),
    ]
    ground = DownlinkNode(cfg, out_dir=tmp_path / "rx", codec_factory=None)
    rx = UdpDownlink(ground, ("127.0.0.1", 0))
    thread = threading.Thread(target=rx.run, kwargs={"timeout_s": 20.0, "expect_bundles": 2})
    thread.start()
    try:
        edge = UplinkNode(cfg, pipeline=EncodePipeline(FixedRate(0.5)))
        with UdpUplink(edge, ("127.0.0.1", rx.port)) as tx:
            assert tx.run(timeout_s=20.0, captures=captures)
    finally:
        thread.join(timeout=30.0)
        rx.close()
    assert len(tx.encode_errors) == 1 and "broken.tbx" in tx.encode_errors[0]
    assert sorted(edge.images) == ["cap0.tbx", "cap1.tbx"]
    for name, data in good.items():
        res = ground.results[edge.images[name].bundle_id]
        assert res.complete and Path(res.tbx_path).read_bytes() == data


@pytest.mark.parametrize("linger_s", [None, 0.0])
def test_ground_with_everything_expected_still_answers_a_lost_fin(tmp_path, linger_s):
    """The ground's answers in the first 0.1 s after the expected photo is complete (its
    FIN) are lost: a receiver that lingers answers the sender's EOF re-send (after
    ``rto_s`` = 0.2 s) and the photo is acknowledged; one that leaves at once
    (``linger_s=0``) leaves the sender to give up a photo the ground has stored."""
    rng = np.random.default_rng(7)
    cfg = LinkConfig(mtu_bytes=200, arq="immediate", rto_s=0.2, nak_timeout_s=0.2,
                     max_retries=4)
    data = tbx(rng)
    ground = DownlinkNode(cfg, out_dir=tmp_path, codec_factory=None)
    rx = UdpDownlink(ground, ("127.0.0.1", 0))
    send = rx.transport.send
    dropped: list[float] = []

    def lose_first_answer_after_completion(frame: bytes) -> None:
        if ground.bundles_complete and (not dropped or time.monotonic() < dropped[0] + 0.1):
            dropped.append(time.monotonic())
            return
        send(frame)

    rx.transport.send = lose_first_answer_after_completion
    kwargs = {"timeout_s": 20.0, "expect_bundles": 1, "linger_s": linger_s}
    thread = threading.Thread(target=rx.run, kwargs=kwargs)
    thread.start()
    try:
        edge = UplinkNode(cfg)
        edge.store("img.tbx", data, 0.0)
        with UdpUplink(edge, ("127.0.0.1", rx.port)) as tx:
            assert tx.run(timeout_s=20.0)
    finally:
        thread.join(timeout=30.0)
        rx.close()
    assert dropped
    assert stored(tmp_path, data).read_bytes() == data
    record = edge.images["img.tbx"]
    if linger_s is None:
        assert record.acked_s is not None and record.failed_s is None
    else:
        assert record.acked_s is None and record.failed_s is not None
