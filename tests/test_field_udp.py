"""Field mode: the real Sender and Receiver over a real UDP socket pair on 127.0.0.1."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from downlink import DownlinkNode
from downlink.udp import UdpDownlink
from textboost.codec.container import Container, Header
from textboost.protocol import LinkConfig
from uplink import UplinkNode
from uplink.udp import UdpUplink, parse_host_port


def tbx(rng: np.random.Generator, n_groups: int = 3) -> bytes:
    header = Header(model_id=b"TST1", width=64, height=64, rate=500, n_groups=n_groups)
    groups = tuple(rng.bytes(int(n)) for n in rng.integers(100, 700, size=n_groups))
    return Container(header=header, text=b"EXIT 12", z=rng.bytes(40), groups=groups).to_bytes()


class LossyUplink(UdpUplink):
    """Drops a seeded share of outgoing datagrams before the socket (the network here is
    loopback, which never loses anything)."""

    def __init__(self, *args, loss: float, rng: np.random.Generator, **kw) -> None:
        super().__init__(*args, **kw)
        real = self.sock

        class _Sock:
            def __getattr__(self, name):
                return getattr(real, name)

            def sendto(self, data, addr):
                if rng.random() >= loss:
                    real.sendto(data, addr)

        self.sock = _Sock()


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
        assert (tmp_path / f"bundle_{bundle_id:05d}.tbx").read_bytes() == data
        assert edge.images[name].acked_s is not None
    if loss:
        assert edge.sender.stats.retransmitted_frames > 0
