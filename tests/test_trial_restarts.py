"""A field trial's restarts as the ground page shows them: the vehicle restarting
mid-transfer, a resent copy, the ground restarting while the vehicle keeps sending. One
card per photo, no partial files left behind, and link figures that do not alarm."""

from __future__ import annotations

import socket
import threading
import time
from datetime import datetime

import numpy as np
import pytest

from downlink.service import DownlinkService
from downlink.web import GroundView
from tests.field_harness import tbx, write_config
from tests.ground_service import Ground, send, submitted, until_acked, wait_for
from textboost.bitstream.container import Container
from textboost.field.config import load_field_config
from textboost.field.eventlog import read_events
from textboost.protocol import Sender, frame_info


def _cards(view: GroundView) -> dict[str, tuple[str | None, int]]:
    view.refresh()
    return {k: (i.name, i.duplicates) for k, i in view.images.items()}


def _link(view: GroundView) -> str:
    view.refresh()
    return view.link_html()


def test_restarts_leave_one_card_per_photo_no_partial_files_and_no_false_loss(tmp_path):
    rng = np.random.default_rng(25)
    config = write_config(tmp_path)
    out = tmp_path / "out"
    photo_a, photo_b = tbx(rng), tbx(rng)
    ground = Ground(config)
    view = GroundView(out, tmp_path / "downlink.jsonl", link_stats=ground.svc.link_figures)
    assert "last contact</div><div class='tb-value'>no frame yet" in _link(view)
    with ground.vehicle_socket() as s:
        # the vehicle sends half of photo A, then restarts (a new epoch) and sends it again
        _, frames = submitted(ground.svc.link, 7, 0, photo_a)
        send(s, frames[: len(frames) // 2])
        wait_for(lambda: (out / "partial" / "e7_b0.json").exists(), 10)
        assert list(_cards(view)) == ["e7_b0"]
        s8, frames = submitted(ground.svc.link, 8, 0, photo_a)
        send(s, frames)
        until_acked(s, s8)
        wait_for(lambda: len(list(out.glob("*.tbx"))) == 1, 10)
        time.sleep(0.2)
        name = next(out.glob("*.tbx")).stem
        assert _cards(view) == {"e8_b0": (name, 0)}  # no "arriving" ghost beside it
        assert sorted(p.name for p in (out / "partial").iterdir()) == []
        assert "under reassembly</div><div class='tb-value'>0<" in _link(view)
        assert "recent loss</div><div class='tb-value'>0.0 %" in _link(view)

        # it restarts again before it recorded the FIN: the resent copy is recognised
        s9, frames = submitted(ground.svc.link, 9, 0, photo_a)
        send(s, frames)
        until_acked(s, s9)
        wait_for(lambda: any(e["event"] == "duplicate"
                             for e in read_events(tmp_path / "downlink.jsonl")), 10)  # fmt: skip
        assert _cards(view) == {"e8_b0": (name, 1)}  # counted on the photo's one card

        # photo B half sent; the ground stops; the vehicle goes on sending into the void
        s9.submit(1, Container.parse(photo_b).to_sections(), 0.0)
        frames = s9.poll_transmit(0.0)
        send(s, frames[: len(frames) // 2])
        wait_for(lambda: (out / "partial" / "e9_b1.json").exists(), 10)
        time.sleep(0.2)
        ground.stop()
        send(s, frames[len(frames) // 2 :])  # lost: nobody listens
        (out / "partial" / "e3_b4.json").write_text("{}")  # left by an older ground
        ground = Ground(config)
        view = GroundView(out, tmp_path / "downlink.jsonl", link_stats=ground.svc.link_figures)
        assert not (out / "partial" / "e3_b4.json").exists()  # not in flight: swept
        assert (out / "partial" / "e9_b1.json").exists()  # in flight: kept
        assert "no frame yet" in _link(view)
        until_acked(s, s9)  # the EOF re-sent, the lost half NAKed and sent again
        wait_for(lambda: len(list(out.glob("*.tbx"))) == 2, 10)
        time.sleep(0.2)
        link = _link(view)
        ground.stop()
    cards = _cards(view)
    assert sorted(cards) == ["e8_b0", "e9_b1"]
    assert all(n is not None for n, _ in cards.values())
    assert sorted(p.name for p in (out / "partial").iterdir()) == []
    assert "under reassembly</div><div class='tb-value'>0<" in link
    # the frames sent while the ground was down are not this link's loss
    assert "recent loss</div><div class='tb-value'>0.0 %" in link, link
    assert "s ago" in link and "frames received since" in link


@pytest.mark.slow
def test_page_after_a_vehicle_restart_shows_one_card_per_photo_and_no_loss(
    tmp_path, browser_page
):
    """The live page in Chromium, open before anything is sent, through a vehicle restart
    mid-transfer and a resent copy: one card, no ghost, loss 0 %, without a reload."""
    rng = np.random.default_rng(26)
    photo = tbx(rng)
    ground = Ground(write_config(tmp_path), web=f"127.0.0.1:{_free_tcp_port()}")
    page = browser_page
    try:
        page.goto(ground.svc.web.url)
        assert "no frame yet" in page.locator("#link").inner_text()
        with ground.vehicle_socket() as s:
            _, frames = submitted(ground.svc.link, 7, 0, photo)
            send(s, frames[: len(frames) // 2])
            page.wait_for_selector("#card-e7_b0", timeout=10_000)  # words landed
            for epoch in (8, 9):  # a restart mid-transfer, then one before the FIN counted
                sender, frames = submitted(ground.svc.link, epoch, 0, photo)
                send(s, frames)
                until_acked(s, sender)
        page.wait_for_function(
            "document.querySelector('#cards').textContent.includes('resent copies')",
            timeout=10_000,
        )
        page.wait_for_timeout(500)  # a late update would show here
        cards = page.locator(".tb-card")
        assert cards.count() == 1
        text = cards.first.inner_text()
        assert "arriving" not in text and "picture on its way" not in text
        assert page.locator("#card-e7_b0").count() == 0
        link = page.locator("#link").inner_text()
        assert "images delivered\n1" in link and "under reassembly\n0" in link
        assert "recent loss\n0.0 %" in link and "no frame yet" not in link
        page.screenshot(path=str(tmp_path / "after_restart.png"), full_page=True)
    finally:
        ground.stop()


def _free_tcp_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def test_a_vehicle_clock_ahead_of_the_ground_is_a_warning_not_a_negative_time(tmp_path):
    import json

    out = tmp_path / "out"
    (out / "partial").mkdir(parents=True)
    taken = "2026-12-07T03:00:30Z"  # 27.6 s after the words arrived, by the vehicle's clock
    arrived = datetime.fromisoformat("2026-12-07T03:00:02.4+00:00").timestamp()
    (out / "partial" / "e5_b0.json").write_text(json.dumps({"capture": {"time": taken}}))
    log = tmp_path / "down.jsonl"
    log.write_text(json.dumps({"t": arrived, "node": "downlink", "event": "text", "epoch": 5,
                               "bundle": 0, "bytes": 40, "words": []}) + "\n")  # fmt: skip
    view = GroundView(out, log)
    view.refresh()
    card = view._card(view.images["e5_b0"])
    (warning,) = card.warnings
    assert warning.startswith("clock: taken 28 s after it arrived") and "ahead" in warning
    meta = dict(card.meta)
    assert not any(v.startswith("-") for v in meta.values())
    assert "text after capture" not in meta and "text after first section" not in meta
    assert dict(card.details)["arrival minus capture time"] == "-27.6 s"  # for a technician
    html = view.card_html("e5_b0")  # the warning is marked, the figure folded away
    assert "tb-warn'>⚠ clock: taken 28 s" in html
    assert html.index("<details") < html.index("-27.6 s")


def _feed(svc: DownlinkService, frames: list[bytes], until=lambda: False) -> list[bytes]:
    """Frames straight into the ground service, up to the first one after which ``until()``;
    returns the rest."""
    for i, f in enumerate(frames):
        svc.receive(f, 0.0)
        if until():
            return frames[i + 1 :]
    return []


@pytest.mark.slow
def test_a_preview_made_useless_by_the_complete_picture_is_killed(tmp_path, kodim23):
    """Issue 25 item 6, on a real receiver with the real codec: a preview still decoding when
    its photo arrives whole is stopped (its process killed, a fresh one started), none is
    logged after the delivery, no partial file stays; a preview queued while a complete
    picture waits for its decode starts only after it."""
    from textboost.pipeline.loader import PipelineLoader

    config = write_config(tmp_path)
    text = config.read_text().replace("decode: false", "decode: true")
    config.write_text(text.replace("mtu_bytes: 200", "mtu_bytes: 64"))  # many frames a photo
    svc = DownlinkService(load_field_config(config, need="downlink"), loader=PipelineLoader())
    log = tmp_path / "downlink.jsonl"
    try:
        codec = svc.loader()
        big = codec.encode(kodim23, rate=0.6, text=False)  # 768x512: a preview takes a while
        sender = Sender(svc.link, epoch=4)
        sender.submit(1, Container.parse(big).to_sections(), 0.0)
        frames = sender.poll_transmit(0.0)
        rest = _feed(svc, frames, until=lambda: svc.previews.running == (4, 1))
        assert rest, "the photo completed before its first preview started"
        pid = svc.previews.pid
        _feed(svc, rest)  # the photo whole while its preview decodes
        wait_for(lambda: any(e["event"] == "preview_dropped" and e["ran_s"] > 0
                             for e in read_events(log)), 30)  # fmt: skip
        assert svc.previews.pid != pid and svc.previews.started == 2  # killed, a fresh one
        wait_for(lambda: not svc._decoding or all(f.done() for f in svc._decoding), 120)
        svc._collect_decoded()
        events = list(read_events(log))
        dropped = [e for e in events if e["event"] == "preview_dropped"]  # queued ones ran 0 s
        assert {(e["bundle"], e["reason"]) for e in dropped} == {(1, "complete picture available")}
        assert sum(e["ran_s"] > 0 for e in dropped) == 1  # the one decoding: cut short
        delivered = next(i for i, e in enumerate(events) if e["event"] == "delivered")
        assert not [e for e in events[delivered:] if e["event"] == "group"]
        assert [e["event"] for e in events if e["event"] == "decoded"] == ["decoded"]
        assert sorted(p.name for p in (tmp_path / "out" / "partial").iterdir()) == []

        # a complete picture waiting for the decode worker holds the next preview back
        gate = threading.Event()
        svc._worker.submit(gate.wait, 60)  # the worker busy with an earlier decode
        photo_a = codec.encode(kodim23[:192, :256], rate=0.3, text=False)
        photo_b = codec.encode(kodim23[192:384, 256:512], rate=1.0, text=False)
        sender.submit(2, Container.parse(photo_a).to_sections(), 0.0)
        sender.submit(3, Container.parse(photo_b).to_sections(), 0.0)
        frames = sender.poll_transmit(0.0)
        _feed(svc, [f for f in frames if frame_info(f).bundle_id == 2])  # A: whole
        assert svc._finals == 1
        _feed(svc, [f for f in frames if frame_info(f).bundle_id == 3],
              until=lambda: (4, 3) in svc._useful)  # B: up to its first y group  # fmt: skip
        time.sleep(1.0)
        assert svc.previews.running is None  # held: A's picture goes first
        gate.set()
        wait_for(lambda: any(e["event"] == "group" and e["bundle"] == 3
                             for e in read_events(log)), 120)  # fmt: skip
        wait_for(lambda: all(f.done() for f in svc._decoding), 120)
        svc._collect_decoded()
    finally:
        svc.close()
    events = list(read_events(log))
    name_a = next(e["image"] for e in events if e["event"] == "delivered" and e["bundle"] == 2)
    preview_b = tmp_path / "out" / "partial" / "e4_b3.png"  # made, not wasted
    assert (tmp_path / "out" / f"{name_a}.png").stat().st_mtime_ns < preview_b.stat().st_mtime_ns
