"""``link_sim proxy``: the sans-IO relay core against the channel statistics, the UDP driver
on loopback, 20 images through it at 20 % bursty loss with the real field transports, and
``link_sim replay`` on the event log of that run."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from downlink import DownlinkNode
from downlink.store import stored
from downlink.udp import UdpDownlink
from link_sim.proxy import ProxyDriver
from link_sim.proxy import main as proxy_main
from link_sim.relay import Relay
from link_sim.replay import LogError, read_logs, replay, summarize
from link_sim.replay import main as replay_main
from link_sim.scenario import load_scenario
from tests.helpers import ROOT, run_module
from textboost.bitstream.container import Container, Header
from textboost.field.eventlog import EventLog
from textboost.protocol import BundleDelivered, LinkConfig, SectionDelivered
from uplink import UplinkNode
from uplink.udp import UdpUplink

# 20 % stationary loss in bursts of 5 frames on average (netem gemodel p r)
BURSTY = {"p": 0.05, "r": 0.2, "loss_good": 0.0, "loss_bad": 1.0}


def scenario_file(
    tmp_path: Path, forward: dict, reverse: dict | None, seed: int = 7, protocol: dict | None = None
) -> Path:
    """A scenario for the rescue mission with the given link (its images and profiles)."""
    raw = yaml.safe_load((ROOT / "scenarios/rescue.yaml").read_text())
    raw.update(seed=seed, runs=1, duration_s=600.0)
    raw["sender"]["max_in_flight"] = 4
    raw["link"] = {"forward": forward}
    if reverse is not None:
        raw["link"]["reverse"] = reverse
    raw["protocol"] = {"mtu_bytes": forward["mtu_bytes"], **(protocol or {})}
    raw["images"]["set"] = str(ROOT / "link_sim/data/kodak_text")
    path = tmp_path / "trial.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_relay_core_loss_delay_queue_and_contacts(tmp_path):
    fwd = {"rate_bps": 80_000, "delay_s": 0.25, "mtu_bytes": 200, "burst": BURSTY}
    s = load_scenario(scenario_file(tmp_path, fwd, None))
    relay = Relay(s, queue_bytes=10_000)
    d = relay.forward
    airtime = 8 * 100 / 80_000  # 10 ms per 100-byte datagram
    for k in range(20_000):  # one every 20 ms: the queue never builds up
        d.feed(bytes(100), 0.02 * k)
    c = d.counters
    rate = c.lost / c.datagrams_in
    assert 0.17 < rate < 0.23, rate  # stationary p / (p + r) = 0.2, 20 000 seeded draws
    assert d.next_due() == pytest.approx(airtime + 0.25)  # the first one, if it survived
    out = d.due(1e9)
    assert len(out) == c.delivered == 20_000 - c.lost
    assert c.delay_sum_s / c.delivered == pytest.approx(airtime + 0.25)
    # Same seed, same arrivals: the same datagrams are lost (the draws are in send order).
    again = Relay(s, queue_bytes=10_000).forward
    for k in range(20_000):
        again.feed(bytes(100), 0.02 * k)
    assert again.counters.lost == c.lost
    # A burst faster than the rate queues (serialisation) and overflows the queue.
    q = Relay(s, queue_bytes=1_000).forward
    for _ in range(30):
        q.feed(bytes(100), 100.0)
    assert q.counters.queue_full == 19  # one on air, 10 wait (1 000 bytes), 19 dropped
    dues = []
    while q.next_due() is not None:
        t = q.next_due()
        dues += [t] * len(q.due(t))
    # back to back, one time on air apart (the lost ones leave gaps of whole airtimes)
    steps = np.diff([100.0 + 0.25, *dues]) / airtime
    assert np.allclose(steps, np.round(steps))
    assert max(dues) <= 100.0 + 11 * airtime + 0.25 + 1e-9
    # Contact windows: nothing goes on air outside them; a datagram waits for the next.
    fwd_w = dict(fwd, burst=None, contacts={"kind": "windows", "windows": [[10, 20], [50, 60]]})
    w = Relay(load_scenario(scenario_file(tmp_path, fwd_w, None))).forward
    w.feed(b"x" * 100, 25.0)
    assert w.next_due() == pytest.approx(50.0 + airtime + 0.25)
    w.feed(b"y" * 100, 19.99)  # a full frame would not finish before loss of signal
    assert w.due(1e9) == [b"x" * 100, b"y" * 100]
    w.feed(b"z", 70.0)  # no window left
    assert w.counters.no_contact == 1


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_proxy_relays_real_udp_with_seeded_loss_and_measured_delay(tmp_path):
    delay = 0.05
    fwd = {"rate_bps": 400_000, "delay_s": delay, "mtu_bytes": 200, "burst": BURSTY}
    rev = {"rate_bps": 400_000, "delay_s": delay, "mtu_bytes": 200}
    s = load_scenario(scenario_file(tmp_path, fwd, rev, seed=11))
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(0.5)
    relay = Relay(s)
    proxy = ProxyDriver(relay, ("127.0.0.1", 0), sink.getsockname())
    thread = threading.Thread(target=proxy.run, kwargs={"duration_s": 20.0})
    thread.start()
    src = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent: dict[int, float] = {}
    got: dict[int, float] = {}
    peer: list = []

    def collect() -> None:
        while True:
            try:
                data, addr = sink.recvfrom(2048)
            except TimeoutError:
                return
            got[int.from_bytes(data[:4], "big")] = time.monotonic()
            peer[:] = [addr]

    reader = threading.Thread(target=collect)
    reader.start()
    try:
        for k in range(300):
            sent[k] = time.monotonic()
            src.sendto(k.to_bytes(4, "big") + bytes(96), ("127.0.0.1", proxy.port))
            time.sleep(0.004)
        reader.join(timeout=10.0)
        sink.sendto(b"ack", peer[0])  # the reverse direction goes back to the sender
        src.settimeout(2.0)
        assert src.recvfrom(64)[0] == b"ack"
    finally:
        proxy.stop()
        thread.join(timeout=10.0)
        proxy.close()
        src.close()
        sink.close()
    c = relay.forward.counters
    assert c.datagrams_in == 300 and c.queue_full == 0
    assert len(got) == c.delivered == 300 - c.lost
    assert 0.08 < c.lost / 300 < 0.35  # 20 % in bursts of 5 (about 12 bursts in 300)
    # the same seed and order on the sans-IO core loses exactly the same datagrams
    offline = Relay(s).forward
    for _ in range(300):
        offline.feed(bytes(100), 0.0)
    assert offline.counters.lost == c.lost
    delays = np.array([got[k] - sent[k] for k in got])
    floor = delay + 8 * 100 / 400_000
    assert delays.min() >= floor - 0.002
    assert np.median(delays) < floor + 0.05  # scheduling slack on a loaded 2-core machine
    assert relay.reverse is not None and relay.reverse.counters.delivered == 1


def tbx(rng: np.random.Generator, n: int) -> bytes:
    header = Header(model_id=b"TST1", width=32, height=32, rate=500, n_groups=2)
    groups = (rng.bytes(n // 2), rng.bytes(n - n // 2))
    return Container(header=header, text=b"EXIT %d" % n, z=rng.bytes(30), groups=groups).to_bytes()


def test_twenty_images_through_the_proxy_at_20_percent_bursty_loss_then_replay(tmp_path):
    """The issue's rehearsal: 20 images, each delivered exactly once and byte-identical,
    over a proxy losing 20 % of the frames in bursts both ways; then the run's event log
    replayed on the same scenario gives measured and simulated latencies of one order."""
    link = {"rate_bps": 200_000, "delay_s": 0.01, "mtu_bytes": 200, "burst": BURSTY}
    protocol = {"arq": "deferred", "rto_s": 0.3, "nak_timeout_s": 0.3, "max_retries": 100}
    path = scenario_file(tmp_path, link, dict(link), seed=5, protocol=protocol)
    s = load_scenario(path)
    cfg = LinkConfig(mtu_bytes=200, arq="deferred", rto_s=0.3, nak_timeout_s=0.3,
                     max_retries=100, auth_key=b"rehearsal-key-0123456789")
    rng = np.random.default_rng(1)
    images = {f"img{i:02d}": tbx(rng, int(n)) for i, n in enumerate(rng.integers(300, 900, 20))}

    log_up = tmp_path / "logs" / "uplink.jsonl"
    log_down = tmp_path / "logs" / "downlink.jsonl"
    now = [0.0]
    up_log = EventLog(log_up, "uplink", clock=lambda: now[0])
    down_log = EventLog(log_down, "downlink", clock=lambda: now[0])
    lock = threading.Lock()

    def log(target: EventLog, event: str, **kw) -> None:
        with lock:
            now[0] = time.time()
            target.write(event, **kw)

    ground = DownlinkNode(cfg, out_dir=tmp_path / "rx", codec_factory=None)
    deliveries: list[int] = []
    receive = ground.receive

    def logged_receive(data: bytes, t: float):
        events = receive(data, t)
        for e in events:
            if isinstance(e, SectionDelivered) and e.index == 0:
                log(down_log, "text", epoch=e.epoch, bundle=e.bundle_id, bytes=len(e.data),
                    words=[])
            elif isinstance(e, BundleDelivered):
                deliveries.append(e.bundle_id)
                log(down_log, "delivered", epoch=e.epoch, bundle=e.bundle_id,
                    bytes=sum(map(len, e.sections)))
        return events

    ground.receive = logged_receive
    rx = UdpDownlink(ground, ("127.0.0.1", 0))
    relay = Relay(s)
    proxy = ProxyDriver(relay, ("127.0.0.1", 0), ("127.0.0.1", rx.port))
    # The loss is per frame in bursts (mean 5 frames): the sparse EOF re-sends that ask
    # again for a lost last FIN stay in a burst with 0.8 a frame, so the ground lingers
    # 20 re-send periods (a FIN still lost after them: under 1 % of runs), not the 3 default.
    t_rx = threading.Thread(target=rx.run, kwargs={"timeout_s": 50.0, "expect_bundles": 20,
                                                   "linger_s": 6.0})
    t_px = threading.Thread(target=proxy.run, kwargs={"duration_s": 55.0})
    t_rx.start()
    t_px.start()
    edge = UplinkNode(cfg, max_in_flight=4)
    submit = edge.sender.submit

    def logged_submit(bundle_id, sections, t, classes=None):
        submit(bundle_id, sections, t, classes)
        image = next(k for k in images if k not in submitted)
        submitted[image] = bundle_id
        log(up_log, "submitted", image=image, epoch=edge.sender.epoch, bundle=bundle_id,
            bytes=sum(map(len, sections)))

    submitted: dict[str, int] = {}
    edge.sender.submit = logged_submit
    try:
        for name, data in images.items():  # the storage hands them out in this order
            log(up_log, "captured", image=name, source="test")
            edge.store(name, data, 0.0)
            log(up_log, "encoded", image=name, bytes=len(data), bpp=8 * len(data) / 1024)
        with UdpUplink(edge, ("127.0.0.1", proxy.port)) as tx:
            assert tx.run(timeout_s=45.0)
    finally:
        t_rx.join(timeout=60.0)
        proxy.stop()
        t_px.join(timeout=10.0)
        proxy.close()
        rx.close()
        up_log.close()
        down_log.close()
    assert relay.forward.counters.lost > 0 and relay.reverse.counters.lost > 0
    fwd = relay.forward.counters.as_dict()
    assert 0.1 < fwd["loss_rate"] < 0.3, fwd
    # exactly once, bytes identical
    assert sorted(deliveries) == sorted(submitted.values()) and len(deliveries) == 20
    for name, data in images.items():
        assert stored(tmp_path / "rx", data).read_bytes() == data
        assert edge.images[name].acked_s is not None
    assert edge.sender.stats.retransmitted_frames > 0

    # The run's log, replayed on its scenario.
    trial = read_logs([log_up, log_down])
    assert [t.image for t in trial] == list(images)
    rows = replay(s, trial, tmp_path / "cache", tail_s=300.0)
    summary = summarize(rows)
    assert summary["delivered"]["n"] == 20 and summary["text"]["n"] == 20
    for r in rows:
        assert r["simulated_delivered_s"] is not None and r["simulated_delivered_s"] > 0
        assert r["simulated_text_s"] <= r["simulated_delivered_s"]
        assert 0 < r["measured_text_s"] <= r["measured_delivered_s"] + 1e-6
    print("proxy counters:", relay.counters())
    print("replay summary:", json.dumps(summary))
    ratio = summary["delivered"]["ratio"]["median"]
    assert 0.2 < ratio < 5.0, summary  # same channel, same bytes: one order of magnitude
    # and the CLI on the merged log: a table and the JSON document
    merged = tmp_path / "logs" / "merged.jsonl"
    merged.write_text(log_up.read_text() + log_down.read_text())
    out = run_module("link_sim", "replay", str(merged), "--scenario", str(path), "--json",
                     "--cache", str(tmp_path / "cache"), "--tail-s", "300", timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert len(doc["rows"]) == 20 and doc["summary"]["delivered"]["n"] == 20


def test_replay_names_file_line_and_field_of_a_bad_log(tmp_path, capsys):
    good = {"t": 1.0, "node": "uplink", "event": "captured", "image": "a", "epoch": None,
            "bundle": None, "bytes": None}
    cases = [
        ("not json", "not a JSON object"),
        (json.dumps([1]), "expected a JSON object"),
        (json.dumps({**good, "t": "noon"}), "field 't'"),
        (json.dumps({**good, "node": "edge"}), "field 'node'"),
        (json.dumps({**good, "bundle": -1}), "field 'bundle'"),
        (json.dumps({**good, "bytes": 1.5}), "field 'bytes'"),
        (json.dumps({**good, "image": None}), "field 'image'"),
    ]
    for k, (line, expected) in enumerate(cases):
        log = tmp_path / f"bad{k}.jsonl"
        log.write_text(json.dumps(good) + "\n\n" + line + "\n")
        with pytest.raises(LogError, match=expected) as info:
            read_logs([log])
        assert str(info.value).startswith(f"{log}:3: ")
    code = replay_main([str(tmp_path / "bad2.jsonl"), "--scenario",
                        str(ROOT / "scenarios/rescue.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "bad2.jsonl:3: field 't'" in err
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps(good) + "\n")
    with pytest.raises(LogError, match="no image"):
        read_logs([empty])


def test_proxy_cli_bad_input(capsys):
    rescue = str(ROOT / "scenarios/rescue.yaml")
    for argv, expected in (
        (["--to", "nowhere"], "--to 'nowhere'"),
        (["--to", "127.0.0.1:9", "--time-scale", "0"], "--time-scale 0.0"),
        (["--to", "127.0.0.1:9", "--seed", "-1"], "--seed -1"),
    ):
        assert proxy_main(["--scenario", rescue, "--listen", "0", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err


def test_proxy_prints_its_counters_on_sigterm(tmp_path):
    import signal
    import subprocess
    import sys

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "link_sim", "proxy", "--scenario",
         str(ROOT / "scenarios/rescue.yaml"), "--listen", "0", "--to",
         f"127.0.0.1:{sink.getsockname()[1]}", "--json", "--seed", "3", "--duration", "60"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stderr.readline()  # "proxy 127.0.0.1:PORT -> ...": it is listening
        port = int(line.split()[1].rsplit(":", 1)[1])
        assert "seed 3" in line
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as src:
            for _ in range(3):
                src.sendto(b"x" * 50, ("127.0.0.1", port))
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        sink.close()
    assert proc.returncode == 0
    assert json.loads(out)["forward"]["datagrams_in"] == 3
