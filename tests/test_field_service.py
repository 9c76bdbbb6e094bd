"""The field services (``uplink serve``, ``downlink serve``) on loopback: config errors, a
drop-folder run, kill -9 of either side at random points, replays after a restart."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sqlite3
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from downlink.service import DownlinkService
from tests.field_harness import KEY, Trial, tbx, write_config
from tests.ground_service import Ground, send, submitted, until_acked, wait_for
from textboost.bitstream.container import Container
from textboost.field.config import ConfigError, load_field_config
from textboost.field.eventlog import read_events
from textboost.protocol import LinkConfig, Sender

BASE = """
link: {key_file: key}
uplink: {drop_dir: d, state_db: u.db, event_log: u.jsonl, peer: "127.0.0.1:9"}
downlink: {listen: "127.0.0.1:9", out_dir: o, state_db: d.db, event_log: d.jsonl}
"""

@pytest.fixture(scope="module")
def codec(pipeline):
    """These tests exercise the method (words carried, fused decode): the pipeline."""
    return pipeline


def _config(tmp_path: Path, text: str) -> Path:
    (tmp_path / "key").write_bytes(KEY)
    path = tmp_path / "field.yaml"
    path.write_text(text)
    return path


def test_example_config_loads_with_paths_from_its_folder():
    root = Path(__file__).resolve().parents[1]
    cfg = load_field_config(root / "configs" / "field.yaml")
    assert cfg.uplink.drop_dir == root / "runs" / "field" / "drop"
    assert cfg.link_config().auth_key is not None and cfg.link.key_id == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"uplink": "rate_bps: -5"}, "uplink.rate_bps: expected a number > 0, got -5"),
        ({"uplink": "duty_cycle: 1.5"}, "uplink.duty_cycle: expected a number <= 1, got 1.5"),
        ({"uplink": "ratebps: 5"}, "uplink.ratebps: unknown key; remove it"),
        ({"uplink": "peer: nowhere"}, "uplink.peer: expected host:port with a port 1..65535"),
        ({"uplink": "budget: {bpp: 0.1, max_bytes: 900}"}, "uplink.budget: expected exactly one"),
        ({"downlink": "max_pixels: 0"}, "downlink.max_pixels: expected a number > 0, got 0"),
        ({"link": "arq: sometimes"}, "link.arq: expected 'immediate', 'deferred' or 'none'"),
        ({"link": "key_file: missing.key"}, "link.key_file: cannot read"),
        ({"link": "fec_k: 4"}, "link: fec_k 4 / fec_m 0: set both"),
    ],
)
def test_config_errors_name_file_key_and_fix(tmp_path, change, message):
    lines = BASE.strip().split("\n")
    for section, item in change.items():
        i = next(k for k, line in enumerate(lines) if line.startswith(section + ":"))
        key = item.split(":")[0]  # replaced, not given twice (duplicate keys are refused)
        line = re.sub(rf"\b{key}: [^,}}]*(, )?", "", lines[i]).rstrip("}").rstrip(", ")
        lines[i] = f"{line}{'' if line.endswith('{') else ', '}{item}}}"
    path = _config(tmp_path, "\n".join(lines))
    with pytest.raises(ConfigError) as info:
        load_field_config(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_config_missing_section_and_bad_yaml(tmp_path):
    path = _config(tmp_path, "link: {}\n")
    with pytest.raises(ConfigError, match=r"field.yaml: uplink: missing; add the uplink"):
        load_field_config(path, need="uplink")
    path.write_text("link: [unclosed\n")
    with pytest.raises(ConfigError, match=r"field.yaml: not valid YAML at line 2"):
        load_field_config(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_field_config(path)


def test_missing_model_file_fails_at_start_naming_the_section(tmp_path):
    from uplink.service import UplinkService

    text = BASE.replace("peer: ", "codec: {model: gone.safetensors}, peer: ")
    path = _config(tmp_path, text.replace("listen: ", "codec: {model: gone.safetensors}, listen: "))
    cfg = load_field_config(path)
    with pytest.raises(ConfigError, match=r"field.yaml: uplink.codec: .*gone.safetensors"):
        UplinkService(cfg, source=str(path))
    with pytest.raises(ConfigError, match=r"field.yaml: downlink.codec: .*gone.safetensors"):
        DownlinkService(cfg, source=str(path))
    assert not (tmp_path / "o").exists()  # nothing written before the check


def test_serve_cli_config_error_is_one_line(tmp_path):
    import subprocess
    import sys

    path = _config(tmp_path, BASE.replace("peer: ", "rate_bps: -5, peer: "))
    r = subprocess.run(
        [sys.executable, "-m", "uplink", "serve", "--config", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().endswith("uplink.rate_bps: expected a number > 0, got -5")
    assert len(r.stderr.strip().splitlines()) == 1


def test_drop_folder_and_http_intake_deliver_exactly_once(tmp_path):
    rng = np.random.default_rng(1)
    trial = Trial(tmp_path)
    intake_line = f"  intake: 127.0.0.1:{_tcp_port()}\n  poll_s:"
    trial.config.write_text(trial.config.read_text().replace("  poll_s:", intake_line))
    intake = load_field_config(trial.config).uplink.intake
    images = {f"cam{i}.tbx": tbx(rng) for i in range(3)}
    names = list(images)
    (tmp_path / "drop").mkdir()
    (tmp_path / "drop" / "cam0.json").write_text('{"lat": 45.5}')
    trial.drop(names[0], images[names[0]])
    trial.drop(names[1], images[names[1]])
    trial.start("downlink")
    trial.start("uplink")
    _post(intake, names[2], images[names[2]], timeout_s=30)
    trial.sent[names[2]] = hashlib.sha256(images[names[2]]).hexdigest()
    assert trial.wait_acked(3, timeout_s=40)
    assert trial.stop_all() == ""
    for data in images.values():
        sha = hashlib.sha256(data).hexdigest()
        assert (tmp_path / "out" / f"{sha[:16]}.tbx").read_bytes() == data
        record = json.loads((tmp_path / "out" / f"{sha[:16]}.json").read_text())
        assert record["sha256"] == sha and record["width"] == 64 and record["strings"] == []
    assert sorted(p.name for p in (tmp_path / "drop").iterdir()) == []  # sidecar taken too
    with sqlite3.connect(tmp_path / "uplink.db") as db:
        assert db.execute("SELECT sidecar FROM images WHERE image_id='cam0.tbx'").fetchone() == (
            '{"lat": 45.5}',
        )
    audit = trial.audit()
    assert audit["lost"] == audit["duplicated"] == audit["extra"] == 0
    up = list(read_events(tmp_path / "uplink.jsonl"))
    sources = {e["image"]: e["source"] for e in up if e["event"] == "captured"}
    assert sources == {"cam0.tbx": "drop", "cam1.tbx": "drop", "cam2.tbx": "http"}
    for e in up + list(read_events(tmp_path / "downlink.jsonl")):
        assert {"t", "node", "event", "image", "epoch", "bundle", "bytes"} <= set(e)
    kinds = {e["event"] for e in up}
    assert {"restart", "captured", "encoded", "submitted", "acked"} <= kinds


def _tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(intake: str, name: str, data: bytes, timeout_s: float) -> None:
    """POST to the HTTP intake, retrying while the service starts."""
    end = time.monotonic() + timeout_s
    while True:
        req = urllib.request.Request(f"http://{intake}/images/{name}", data=data, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                assert r.status == 201
                return
        except (ConnectionError, urllib.error.URLError):
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def test_kill9_of_either_side_loses_and_duplicates_nothing(tmp_path):
    """10 kills -9 at random points (5 of each side, alternating), each followed by a
    restart; images keep coming in between. Then: every image stored once, bytes identical,
    nothing acknowledged sent again."""
    rng = np.random.default_rng(16)
    trial = Trial(tmp_path, rate_bps=40_000)  # ~0.3 s per image: kills land mid-bundle
    trial.start_and_wait("downlink")
    trial.start_and_wait("uplink")
    n = 0
    for k in range(10):
        for _ in range(2):
            trial.drop(f"img{n:02d}.tbx", tbx(rng))
            n += 1
        time.sleep(float(rng.uniform(0.0, 1.0)))  # a random point of the service's work
        node = ("uplink", "downlink")[k % 2]
        trial.kill(node)
        trial.start_and_wait(node)
    assert trial.wait_acked(n, timeout_s=60), trial.audit()
    assert trial.stop_all() == ""
    audit = trial.audit()
    assert trial.kills == 10
    assert audit["sent"] == n == 20
    assert audit["lost"] == 0 and audit["duplicated"] == 0 and audit["extra"] == 0, audit
    assert audit["acked_resent"] == 0, audit
    assert audit["restarts"] == 12  # every kill hit a running service


def test_replays_after_a_restart_are_dropped_and_counted(tmp_path):
    """Frames recorded from a delivered bundle, and from one half sent, replayed to the
    restarted ground: dropped (replay/stale), counted, logged; nothing delivered again; the
    half-sent bundle's kept frames survive the restart and the rest completes it."""
    rng = np.random.default_rng(5)
    config = write_config(tmp_path)
    ground = Ground(config, run_s=30.0)
    cfg = ground.svc.link
    dest = ground.address
    sender = Sender(cfg, epoch=7)
    whole, half = tbx(rng), tbx(rng)
    sender.submit(0, Container.parse(whole).to_sections(), 0.0)
    sender.submit(1, Container.parse(half).to_sections(), 0.0)
    frames = sender.poll_transmit(0.0)
    first = list(frames)  # bundle 0 whole, then bundle 1
    cut = len(frames) - 3  # the last frames of bundle 1 (and its EOF) held back
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for f in first[:cut]:
            s.sendto(f, dest)
            time.sleep(0.002)
        wait_for(lambda: _stored(tmp_path) == 1)
        time.sleep(0.3)
        ground.stop()
        ground = Ground(config, run_s=30.0)  # the restart
        assert ground.svc.rx.memory_bytes > 0  # bundle 1's kept frames are back
        for f in first[:cut]:  # replayed
            s.sendto(f, dest)
        time.sleep(0.5)
        for f in first[cut:]:  # the rest of bundle 1, first sent now
            s.sendto(f, dest)
        wait_for(lambda: _stored(tmp_path) == 2)
        time.sleep(0.3)
        dropped = ground.svc.rx.stats.dropped_replay + ground.svc.rx.stats.dropped_stale
        ground.stop()
    assert dropped == cut
    sha = {hashlib.sha256(d).hexdigest() for d in (whole, half)}
    assert {p.read_bytes() and hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (tmp_path / "out").glob("*.tbx")} == sha  # fmt: skip
    events = list(read_events(tmp_path / "downlink.jsonl"))
    assert sum(e["event"] == "delivered" for e in events) == 2
    assert sum(e["event"] == "frame_dropped" for e in events) == cut
    assert {e["reason"] for e in events if e["event"] == "frame_dropped"} <= {"replay", "stale"}


def _stored(folder: Path) -> int:
    with sqlite3.connect(folder / "downlink.db") as db:
        return db.execute("SELECT COUNT(*) FROM images").fetchone()[0]


def test_link_config_from_field_yaml_equals_protocol_defaults(tmp_path):
    cfg = load_field_config(_config(tmp_path, BASE))
    assert cfg.link_config() == LinkConfig(auth_key=KEY)


def test_real_codec_encode_and_progressive_decode(tmp_path, codec, kodim23):
    """A PNG dropped at the edge is encoded by the real codec, and the ground decodes a
    preview per y group, then the whole image (both services in threads)."""
    from PIL import Image

    from textboost.pipeline.loader import PipelineLoader
    from uplink.encode import EncodePipeline, FixedRate
    from uplink.service import UplinkService

    config = write_config(tmp_path, rate_bps=300)  # a frame in 2 s: previews keep up
    text = config.read_text().replace("decode: false", "decode: true")
    config.write_text(text.replace("mtu_bytes: 200", "mtu_bytes: 80"))
    cfg = load_field_config(config)
    ground = DownlinkService(cfg, loader=PipelineLoader())  # previews: in a process of their own
    edge = UplinkService(cfg, pipeline=EncodePipeline(FixedRate(0.3), None, lambda: codec))
    image = kodim23[100:292, 200:456]  # 256x192: a few hundred bytes, groups apart
    codec.decode(codec.encode(image, rate=0.3))  # warm: previews keep up with the link
    stops = [threading.Event(), threading.Event()]
    threads = [
        threading.Thread(target=svc.run, args=(stop, 60.0))
        for svc, stop in zip((ground, edge), stops, strict=True)
    ]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: ground.previews.warm, timeout_s=120)  # its codec loaded
        Image.fromarray(image).save(tmp_path / "drop" / "sign.png.tmp", format="PNG")
        (tmp_path / "drop" / "sign.png.tmp").rename(tmp_path / "drop" / "sign.png")
        log = tmp_path / "downlink.jsonl"
        wait_for(lambda: any(e["event"] == "decoded" for e in read_events(log)), timeout_s=60)
    finally:
        for stop in stops:
            stop.set()
        for t in threads:
            t.join(10)
        ground.close()
        edge.close()
    events = list(read_events(tmp_path / "downlink.jsonl"))
    decoded = next(e for e in events if e["event"] == "decoded")
    png = np.asarray(Image.open(tmp_path / "out" / decoded["png"]))
    assert png.shape == (192, 256, 3)
    # each preview asked for is made, or dropped once the whole image is there (never
    # finished after it)
    groups = [e["group"] for e in events if e["event"] == "group" and e.get("png")]
    delivered = next(i for i, e in enumerate(events) if e["event"] == "delivered")
    assert not [e for e in events[delivered:] if e["event"] == "group"]
    n_groups = Container.parse(next((tmp_path / "out").glob("*.tbx")).read_bytes()).header.n_groups
    assert groups and groups[-1] <= n_groups and groups == sorted(groups), events
    encoded = next(e for e in read_events(tmp_path / "uplink.jsonl") if e["event"] == "encoded")
    assert encoded["image"] == "sign.png" and 0 < encoded["bpp"] < 2
    with sqlite3.connect(tmp_path / "uplink.db") as db:
        sent = db.execute("SELECT tbx FROM images").fetchone()[0]
    assert (tmp_path / "out" / f"{decoded['image']}.tbx").read_bytes() == sent


def test_an_image_resent_under_a_new_epoch_is_fined_not_stored_again(tmp_path):
    """The edge restarted before it recorded the FIN: it resends the image under its new
    epoch with a new bundle id. The ground FINs it, logs a duplicate, writes nothing."""
    rng = np.random.default_rng(8)
    config = write_config(tmp_path)
    ground = Ground(config, run_s=30.0)
    image = tbx(rng)
    acked = []
    with ground.vehicle_socket() as s:
        for epoch, bundle in ((7, 0), (8, 3)):
            sender, frames = submitted(ground.svc.link, epoch, bundle, image)
            send(s, frames)
            acked += until_acked(s, sender, timeout_s=10)
    ground.stop()
    assert [(a.bundle_id) for a in acked] == [0, 3]
    assert len(list((tmp_path / "out").glob("*.tbx"))) == 1
    events = [e["event"] for e in read_events(tmp_path / "downlink.jsonl")]
    assert events.count("delivered") == 1 and events.count("duplicate") == 1


def test_event_log_lines_and_a_torn_last_line(tmp_path):
    from textboost.field.eventlog import EventLog

    with EventLog(tmp_path / "log.jsonl", "uplink", clock=lambda: 12.5) as log:
        log.write("captured", image="a.jpg", bytes=10, source="drop")
        with pytest.raises(ValueError, match="event 'capture': expected one of"):
            log.write("capture")
    with open(tmp_path / "log.jsonl", "a") as f:
        f.write('{"t": 13, "node": "upl')  # a power cut mid-line
    (event,) = read_events(tmp_path / "log.jsonl")
    assert event == {"t": 12.5, "node": "uplink", "event": "captured", "image": "a.jpg",
                     "epoch": None, "bundle": None, "bytes": 10, "source": "drop"}  # fmt: skip


def test_uplink_duty_cycle_and_a_failed_bundle_queued_again(tmp_path):
    """With the ground off, a bundle fails after its retries and is queued again (never
    dropped); once the ground is up it is delivered. The radio sends only in the duty window."""
    config = write_config(tmp_path)
    text = config.read_text().replace("max_retries: 1000", "max_retries: 1")
    text = text.replace("key_id: 3", "key_id: 3, max_bundle_bytes: 6000")
    duty = "  duty_cycle: 0.5\n  duty_period_s: 1.0\n  poll_s:"
    config.write_text(text.replace("  poll_s:", duty))
    from uplink.service import UplinkService

    edge = UplinkService(load_field_config(config))
    on = [edge._duty_on(t) for t in (0.1, 0.45, 0.55, 0.9, 1.2)]
    edge.close()
    assert on == [True, True, False, False, True]
    trial = Trial(tmp_path, config)
    trial.drop("lone.tbx", tbx(np.random.default_rng(2)))
    trial.drop("notes.png", b"not an image")  # rejected, the service goes on
    trial.drop("huge.tbx", tbx(np.random.default_rng(3), n_groups=30))  # > max_bundle_bytes
    del trial.sent["notes.png"], trial.sent["huge.tbx"]
    trial.start("uplink")
    log = tmp_path / "uplink.jsonl"
    wait_for(lambda: log.exists() and any(e["event"] == "failed" for e in read_events(log)))
    trial.start("downlink")
    assert trial.wait_acked(1, timeout_s=30)
    assert trial.stop_all() == ""
    audit = trial.audit()
    assert audit["lost"] == audit["duplicated"] == 0 and audit["resubmitted"] >= 1
    assert sorted(p.name for p in (tmp_path / "drop" / "rejected").iterdir()) == [
        "huge.tbx", "notes.png",
    ]  # fmt: skip
    reasons = {e["image"]: e["reason"] for e in read_events(log) if e["event"] == "rejected"}
    assert "more than link.max_bundle_bytes 6000" in reasons["huge.tbx"]
    assert reasons["notes.png"].startswith(str(tmp_path / "drop" / "notes.png"))
