"""Hand-off: GeoJSON, KML and Cursor-on-Target from a receiver's output folder, the CoT
sent over real loopback sockets to listeners that parse what they receive."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from xml.dom import minidom

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from downlink import DownlinkNode
from downlink.cli import main
from downlink.handoff import (
    Delivered,
    cot_events,
    load_delivered,
    parse_cot_url,
    send_cot,
    to_geojson,
    to_kml,
)
from textboost.bitstream.capture import CaptureMeta
from textboost.bitstream.container import Container, Header
from textboost.protocol import LinkConfig, Sender
from textboost.text.payload import encode_words
from textboost.text.words import Word

WHEN = datetime(2026, 12, 3, 9, 30, tzinfo=timezone.utc)
KML = "{http://www.opengis.net/kml/2.2}"


def _receive(out: Path, images: dict[int, tuple[CaptureMeta | None, list[str]]]) -> None:
    """Real bundles through a real Sender and DownlinkNode (no decoder: text only)."""
    rng = np.random.default_rng(0)
    cfg = LinkConfig(mtu_bytes=96, arq="none")
    node = DownlinkNode(cfg, out_dir=out, codec_factory=None)
    s = Sender(cfg)
    for bid, (meta, strings) in images.items():
        words = [
            Word(np.array([[10, 10 + 12 * i], [60, 10 + 12 * i], [60, 20 + 12 * i],
                           [10, 20 + 12 * i]], float), text)
            for i, text in enumerate(strings)
        ]  # fmt: skip
        header = Header(b"TST1", 96, 64, 1000, 2, meta=meta)
        data = Container(header, encode_words(words, 96, 64), rng.bytes(20), (rng.bytes(30),))
        s.submit(bid, data.to_sections(), 0.0)
    for k, f in enumerate(s.poll_transmit(0.0)):
        node.receive(f, float(k))


@pytest.fixture
def received(tmp_path) -> Path:
    _receive(
        tmp_path,
        {
            1: (
                CaptureMeta(time=WHEN, lat=46.5197, lon=6.6323, alt_m=380.0, heading_deg=90.0),
                ["KA 4711", "EXIT"],
            ),
            2: (None, ["NO FIX"]),
            3: (CaptureMeta(lat=-33.8568, lon=151.2153), []),
        },
    )
    return tmp_path


def test_delivered_images_are_read_from_the_receivers_folder(received):
    images = {d.bundle_id: d for d in load_delivered(received)}
    assert set(images) == {1, 2, 3}
    assert images[1].strings == ["KA 4711", "EXIT"] and images[1].located
    assert images[1].capture["time"] == "2026-12-03T09:30:00Z"
    assert not images[2].located and images[2].strings == ["NO FIX"]
    (received / "0123456789abcdef.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"0123456789abcdef\.json: not a receiver.s image JSON"):
        load_delivered(received)


def test_geojson_and_kml_list_the_located_images(received, tmp_path):
    geo, kml = tmp_path / "out.geojson", tmp_path / "out.kml"
    assert main(["export", str(received), "--geojson", str(geo), "--kml", str(kml)]) == 0
    fc = json.loads(geo.read_text())
    assert fc["type"] == "FeatureCollection"
    by_id = {f["properties"]["bundle_id"]: f for f in fc["features"]}
    assert set(by_id) == {1, 3}  # image 2 has no position
    lon, lat, alt = by_id[1]["geometry"]["coordinates"]
    assert (lat, lon, alt) == pytest.approx((46.5197, 6.6323, 380.0), abs=1e-5)
    assert by_id[1]["properties"]["strings"] == ["KA 4711", "EXIT"]
    assert by_id[1]["properties"]["time"] == "2026-12-03T09:30:00Z"
    assert len(by_id[3]["geometry"]["coordinates"]) == 2
    root = ET.fromstring(kml.read_text())
    marks = root.findall(f"{KML}Document/{KML}Placemark")
    # the marker's name is the card's, eEPOCH_bBUNDLE (one layout: downlink/store.py)
    assert sorted(m.get("id") for m in marks) == ["textboost-e0_b1", "textboost-e0_b3"]
    assert marks[0].findtext(f"{KML}name") == "KA 4711 | EXIT"
    assert marks[0].findtext(f"{KML}TimeStamp/{KML}when") == "2026-12-03T09:30:00Z"
    lon_k, lat_k, _ = map(float, marks[0].findtext(f"{KML}Point/{KML}coordinates").split(","))
    assert (lat_k, lon_k) == pytest.approx((46.5197, 6.6323), abs=1e-5)


def test_cot_events_follow_the_tak_conventions():
    d = Delivered(7, {"time": "2026-12-03T09:30:00Z", "lat": 1.5, "lon": 2.5,
                      "heading_deg": 45.0}, ["B-AB 123"], Path("out/bundle_00007.png"))  # fmt: skip
    now = datetime(2026, 12, 3, 10, 0, tzinfo=timezone.utc)
    photo, text = (ET.fromstring(x) for x in cot_events(d, now, 600, "http://ground:8080/"))
    assert photo.get("version") == "2.0" and photo.get("type") == "b-i-x-i"
    assert photo.get("uid") == "textboost-00007" and photo.get("how") == "m-g"
    assert photo.get("time") == photo.get("start") == "2026-12-03T10:00:00.000Z"
    assert photo.get("stale") == "2026-12-03T10:10:00.000Z"
    pt = photo.find("point")
    assert (float(pt.get("lat")), float(pt.get("lon"))) == (1.5, 2.5)
    assert pt.get("ce") == pt.get("le") == pt.get("hae") == "9999999.0"
    links = photo.findall("detail/link")
    assert links[0].get("url") == "http://ground:8080/bundle_00007.png"
    assert "B-AB 123" in photo.findtext("detail/remarks")
    assert photo.find("detail/track").get("course") == "45.0"
    assert text.get("type") == "b-m-p-s-m" and text.get("uid") == "textboost-00007-text-0"
    assert text.find("detail/contact").get("callsign") == "B-AB 123"
    assert text.find("detail/link[@relation='p-p']").get("uid") == "textboost-00007"
    assert cot_events(Delivered(8, {}, ["x"])) == []  # no position, no marker


def test_cot_reaches_udp_and_tcp_listeners_on_loopback(received):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(5)
    assert main(["cot", str(received), "--to", f"udp://127.0.0.1:{udp.getsockname()[1]}"]) == 0
    got = [ET.fromstring(udp.recv(65536)) for _ in range(4)]  # 1: photo + 2 strings; 3: photo
    udp.close()
    assert [e.get("uid") for e in got] == [  # named as the live page's cards (eE_bB)
        "textboost-e0_b1", "textboost-e0_b1-text-0", "textboost-e0_b1-text-1", "textboost-e0_b3"
    ]
    srv = socket.create_server(("127.0.0.1", 0))
    chunks: list[bytes] = []

    def accept() -> None:
        conn, _ = srv.accept()
        with conn:
            while data := conn.recv(65536):
                chunks.append(data)

    t = threading.Thread(target=accept)
    t.start()
    events = cot_events(load_delivered(received)[0])
    assert send_cot(events, f"tcp://127.0.0.1:{srv.getsockname()[1]}") == 3
    t.join(5)
    srv.close()
    stream = b"".join(chunks).decode()
    docs = [d for d in stream.split("<?xml") if d]
    assert [ET.fromstring("<?xml" + d).get("type") for d in docs] == [
        "b-i-x-i", "b-m-p-s-m", "b-m-p-s-m"
    ]


def _openssl_cert(folder: Path, name: str) -> Path:
    """A self-signed certificate and its key in one PEM (openssl, as a TAK admin's tools)."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl binary to make test certificates")
    pem = folder / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                    "-keyout", str(pem), "-out", str(pem)],
                   check=True, capture_output=True)  # fmt: skip
    return pem


def test_cot_over_tls_with_a_client_certificate(received, tmp_path):
    """TAK Server's streaming input: TLS, the server checked against its CA, this ground
    presenting a client certificate the server checks (a real handshake on loopback)."""
    server_pem, client_pem = _openssl_cert(tmp_path, "localhost"), _openssl_cert(tmp_path, "ground")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(client_pem))
    ctx.load_cert_chain(server_pem)
    ctx.verify_mode = ssl.CERT_REQUIRED  # as TAK Server's x509 input
    srv = socket.create_server(("127.0.0.1", 0))
    chunks: list[bytes] = []
    peer: list[str] = []

    def accept() -> None:
        raw, _ = srv.accept()
        with ctx.wrap_socket(raw, server_side=True) as conn:
            peer.append(dict(x[0] for x in conn.getpeercert()["subject"])["commonName"])
            while data := conn.recv(65536):
                chunks.append(data)

    t = threading.Thread(target=accept)
    t.start()
    port = srv.getsockname()[1]
    url = f"tls://localhost:{port}?cert={client_pem}&key={client_pem}&ca={server_pem}"
    assert parse_cot_url(url) == ("tls", "localhost", port)
    assert send_cot(cot_events(load_delivered(received)[0]), url) == 3
    t.join(5)
    srv.close()
    assert peer == ["ground"]
    docs = [d for d in b"".join(chunks).decode().split("<?xml") if d]
    assert [ET.fromstring("<?xml" + d).get("type") for d in docs] == [
        "b-i-x-i", "b-m-p-s-m", "b-m-p-s-m"
    ]
    # a missing file or option is one line naming it, at start
    with pytest.raises(ValueError, match=r"cert=/nowhere/g\.pem"):
        parse_cot_url(f"tls://localhost:{port}?cert=/nowhere/g.pem")
    with pytest.raises(ValueError, match="unknown option 'pass'"):
        parse_cot_url(f"tls://localhost:{port}?pass=x")
    with pytest.raises(ValueError, match="for tls:// only"):
        parse_cot_url(f"tcp://localhost:{port}?cert=x")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.builds(
    lambda scheme, rest: f"{scheme}://{rest}", st.sampled_from(["udp", "tcp", "tls", "http"]),
    st.text(max_size=60)))  # fmt: skip
def test_any_cot_destination_parses_or_is_one_line(url):
    try:
        scheme, host, port = parse_cot_url(url)
    except ValueError as exc:
        assert "\n" not in str(exc) and "CoT destination" in str(exc)
    else:
        assert scheme in ("udp", "tcp", "tls") and host and 0 <= port < 65536


@pytest.mark.parametrize("url", ["http://x:1", "udp://host", "tcp://:80", "udp://h:99999"])
def test_bad_cot_destination_is_named(url, received, capsys):
    with pytest.raises(ValueError, match="expected udp://HOST:PORT, tcp://HOST:PORT or tls://"):
        parse_cot_url(url)
    with pytest.raises(SystemExit) as e:
        main(["cot", str(received), "--to", url])
    assert e.value.code == 2
    assert url in capsys.readouterr().err


# --- hostile words (issue 22 item 5) ------------------------------------------------------

# any code point: C0 controls, U+FFFE/U+FFFF and lone surrogates included
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=12)
XML_ILLEGAL = ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x0e", "\x1b", "\x1f", "\ufffe",
               "\uffff", "\ud800", "\udfff"]  # fmt: skip


def _parse_all(d: Delivered) -> None:
    """Every document of ``d`` through real XML parsers (expat, as ElementTree and as a DOM)
    and the GeoJSON through a strict UTF-8 JSON round trip."""
    for doc in cot_events(d, WHEN, 600, "http://ground:8080/"):
        ET.fromstring(doc)
        minidom.parseString(doc)
    kml = to_kml([d], "http://ground:8080/")
    ET.fromstring(kml)
    minidom.parseString(kml.encode("utf-8"))
    geo = json.dumps(to_geojson([d]), ensure_ascii=False).encode("utf-8")
    json.loads(geo.decode("utf-8"))


@settings(max_examples=200, deadline=None)
@given(strings=st.lists(ANY_TEXT, max_size=4), time=ANY_TEXT, camera=ANY_TEXT)
def test_every_handoff_document_parses_whatever_the_words(strings, time, camera):
    capture = {"lat": 46.5, "lon": 6.6, "time": time, "camera": camera, "heading_deg": 1.0}
    _parse_all(Delivered(3, capture, strings, Path("out/x.png"), name="e1_b3"))


def test_control_characters_in_words_through_the_receiver_and_the_export(tmp_path):
    """One word with each character XML 1.0 cannot carry, received by the real node: the
    TAK events and the KML of that folder parse, the characters are replaced by U+FFFD."""
    out = tmp_path / "rx"
    words = [f"A{c}B" for c in XML_ILLEGAL if not 0xD800 <= ord(c) <= 0xDFFF]  # UTF-8 only
    _receive(out, {1: (CaptureMeta(lat=46.5, lon=6.6), words)})
    (d,) = load_delivered(out)
    assert d.strings == words  # carried as they were
    geo, kml = tmp_path / "out.geojson", tmp_path / "out.kml"
    assert main(["export", str(out), "--geojson", str(geo), "--kml", str(kml)]) == 0
    name = ET.fromstring(kml.read_text()).findtext(f"{KML}Document/{KML}Placemark/{KML}name")
    assert name == " | ".join(["A\ufffdB"] * len(words))
    assert json.loads(geo.read_text())["features"][0]["properties"]["strings"] == [
        "A\ufffdB"
    ] * len(words)
    events = cot_events(d, WHEN)
    assert len(events) == 1 + len(words)
    for ev in events:
        assert "A\ufffdB" in ET.fromstring(ev).findtext("detail/remarks")
    _parse_all(Delivered(1, {"lat": 1.0, "lon": 2.0}, ["".join(XML_ILLEGAL)]))
