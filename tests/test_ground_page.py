"""The ground station's live page in a real browser: headless Chromium (Playwright) on a page
served by the ground service while a real uplink service sends over loopback UDP."""

from __future__ import annotations

import json
import socket
import threading
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from downlink.service import DownlinkService
from downlink.web import GroundView, LiveServer
from textboost.bitstream.capture import CaptureMeta
from textboost.bitstream.container import Container
from textboost.field.config import load_field_config
from textboost.text.payload import encode_words
from textboost.text.words import Word
from uplink.service import UplinkService

SITES = {  # name -> (lat, lon, words)
    "plate": (46.51970, 6.63230, ["VD 12345"]),
    "sign": (46.52110, 6.62810, ["EXIT 7", "NORD"]),
}


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tbx(codec, img: np.ndarray, lat: float, lon: float, strings: list[str]) -> bytes:
    """A real stream of the shipped codec carrying these words and this capture record (as
    a sender that spotted them would write it)."""
    h, w = img.shape[:2]
    meta = CaptureMeta(time=datetime.now(timezone.utc).replace(microsecond=0), lat=lat, lon=lon)
    c = Container.parse(codec.encode(img, rate=0.4, meta=meta))
    words = [
        Word(np.array([[8, 8 + 20 * i], [90, 8 + 20 * i], [90, 22 + 20 * i],
                       [8, 22 + 20 * i]], float), s)
        for i, s in enumerate(strings)
    ]  # fmt: skip
    return Container(c.header, encode_words(words, w, h), c.z, c.groups).to_bytes()


def _free_tcp_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def _config(tmp: Path, cot_port: int) -> Path:
    port = _free_udp_port()
    path = tmp / "field.yaml"
    path.write_text(
        f"""
link: {{mtu_bytes: 128, arq: deferred, rto_s: 1.0, nak_timeout_s: 0.5}}
uplink:
  drop_dir: drop
  state_db: up.db
  event_log: up.jsonl
  peer: 127.0.0.1:{port}
  rate_bps: 8000
  poll_s: 0.1
downlink:
  listen: 127.0.0.1:{port}
  out_dir: received
  state_db: down.db
  event_log: down.jsonl
  web: 127.0.0.1:{_free_tcp_port()}
  cot: udp://127.0.0.1:{cot_port}
"""
    )
    (tmp / "drop").mkdir()
    return path


@pytest.mark.slow
def test_live_page_shows_text_then_picture_with_positions(
    codec, small_image, tmp_path, browser_page
):
    tak = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # stands where a TAK server listens
    tak.bind(("127.0.0.1", 0))
    tak.settimeout(0.2)
    cfg_path = _config(tmp_path, tak.getsockname()[1])
    cfg = load_field_config(cfg_path)
    stop = threading.Event()
    services: dict[str, object] = {}
    ready = threading.Event()

    def serve(name: str, make) -> None:
        svc = services[name] = make(cfg, source=str(cfg_path))  # SQLite: used by one thread
        ready.set()
        try:
            svc.run(stop, 120)
        finally:
            svc.close()

    threads = [threading.Thread(target=serve, args=("ground", DownlinkService), daemon=True)]
    threads[0].start()
    assert ready.wait(60)
    web = services["ground"].web  # the service's own page (downlink.web in field.yaml)
    page = browser_page
    page.goto(web.url)
    assert page.locator("#link").is_visible()
    assert page.locator(".tb-card").count() == 0  # nothing received yet
    threads.append(threading.Thread(target=serve, args=("edge", UplinkService), daemon=True))
    threads[1].start()
    try:
        for name, (lat, lon, strings) in SITES.items():
            tmp = cfg.uplink.drop_dir / f"{name}.tmp"
            tmp.write_bytes(_tbx(codec, small_image, lat, lon, strings))
            tmp.rename(tmp.with_suffix(".tbx"))
        # the live page updates itself (Server-Sent Events): no reload from here on
        page.wait_for_function(
            "document.querySelectorAll('.tb-card').length == 2 && "
            "[...document.querySelectorAll('.tb-card')].every(c => c.textContent.includes("
            "'complete'))",
            timeout=90_000,
        )
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    text = page.locator("#cards").inner_text()
    for _, _, strings in SITES.values():
        for s in strings:
            assert s in text
    assert "at 46.5197" in text and "text after capture" in text
    assert page.locator("#map circle.tb-pos").count() == 2
    src = page.locator(".tb-card img").first.get_attribute("src")
    assert src.startswith("/files/") and ".png" in src
    assert page.evaluate(
        "[...document.querySelectorAll('.tb-card img')].every(i => i.naturalWidth > 0)"
    )
    link = page.locator("#link").inner_text()
    assert "images delivered\n2" in link and "recent loss" in link
    assert "sender epoch" not in link and "NAK frames" not in link  # a technician's: folded
    page.locator("#link summary").click()
    assert page.locator("#link details").inner_text().count("sender epoch") == 1
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(tmp_path / "ground_page.png"), full_page=True)
    # the words reached the ground before the pictures did
    events = [json.loads(x) for x in (tmp_path / "down.jsonl").read_text().splitlines()]
    first = {}
    for e in events:
        first.setdefault((e["event"], e.get("bundle")), e["t"])
    for e in events:
        if e["event"] == "delivered":
            assert first[("text", e["bundle"])] <= e["t"]
    # each image reached the TAK listener as CoT: first with its words (text landed), then
    # again under the same uid with the picture's link
    got = []
    while True:
        try:
            got.append(ET.fromstring(tak.recv(65536)))
        except TimeoutError:
            break
    tak.close()
    photos = [e for e in got if e.get("type") == "b-i-x-i"]
    assert len({e.get("uid") for e in photos}) == 2 and len(photos) == 4
    links = [e.find("detail/link[@relation='r-u']") for e in photos]
    assert sum(link is not None for link in links) == 2  # once the picture is decoded
    assert {e.find("detail/contact").get("callsign") for e in got
            if e.get("type") == "b-m-p-s-m"} == {"VD 12345", "EXIT 7", "NORD"}  # fmt: skip


def test_page_server_refuses_paths_outside_its_folder(tmp_path):
    import urllib.error
    import urllib.request

    (tmp_path / "secret.txt").write_text("no")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").write_bytes(b"\x89PNG fake")
    web = LiveServer(GroundView(tmp_path / "out", tmp_path / "log.jsonl"), ("127.0.0.1", 0))
    web.start()
    try:
        with urllib.request.urlopen(web.url + "files/a.png") as r:
            assert r.read() == b"\x89PNG fake"
        for bad in ("files/../secret.txt", "files/%2e%2e/secret.txt", "files/a.txt",
                    "files/x/y/a.png", "tiles/1/2/3.png", "card/none"):  # fmt: skip
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(web.url + bad)
            assert e.value.code == 404
        html = urllib.request.urlopen(web.url).read().decode()
        assert "no capture positions yet" in html and "http://" not in html.split("<body>")[1]
    finally:
        web.close()
    time.sleep(0)
