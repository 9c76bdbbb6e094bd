"""What a coordinator works with on the live page (issue 25 items 7 and 8): the card's figures
in their words with the link's terms in a details view, a clock that runs ahead as a warning,
"seen" marks kept in the ground's state across a restart, search by plate, word or file
name, and an offline basemap from an MBTiles package or a tile folder — a damaged one is one
line naming the file, and the page goes on without it."""

from __future__ import annotations

import json
import socket
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from downlink.service import DownlinkService
from downlink.state import DownlinkState, SeenMarks
from downlink.tiles import TileError, open_tiles, tile_address
from downlink.web import GroundView, LiveServer, _fold
from tests.field_harness import tbx, write_config
from tests.tile_package import area_package, tile_png, write_mbtiles, xyz
from textboost.bitstream.container import Container
from textboost.field.config import load_field_config
from textboost.field.eventlog import EventLog
from textboost.field.serve import start_line
from textboost.protocol import Sender

HERE = (46.5197, 6.6323)
GREEN = (60, 170, 80)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Photos:
    """Photos arriving at a ground page as the service records them: its event log lines
    and its files (words first, then the stored image and its decoded picture)."""

    def __init__(self, folder: Path) -> None:
        self.out, self.log_path = folder / "received", folder / "down.jsonl"
        (self.out / "partial").mkdir(parents=True)
        self.log = EventLog(self.log_path, "downlink")

    def arrive(self, bundle: int, words: list[str], *, name: str | None = None,
               taken: float | None = None, at: tuple[float, float] = HERE,
               picture: bool = True, epoch: int = 7) -> str:  # fmt: skip
        key = f"e{epoch}_b{bundle}"
        capture = {"time": _iso(taken if taken is not None else datetime.now().timestamp() - 30),
                   "lat": at[0], "lon": at[1], **({"name": name} if name else {})}  # fmt: skip
        doc = {"width": 160, "height": 120, "capture": capture,
               "words": [{"text": w, "quad": [[8, 8 + 20 * i], [90, 8 + 20 * i],
                                             [90, 22 + 20 * i], [8, 22 + 20 * i]]}
                         for i, w in enumerate(words)]}  # fmt: skip
        (self.out / "partial" / f"{key}.json").write_text(json.dumps(doc))
        self.log.write("text", epoch=epoch, bundle=bundle, bytes=60, words=words)
        if picture:
            image = f"{epoch:04x}{bundle:012x}"
            (self.out / f"{image}.json").write_text(json.dumps(doc))
            rgb = np.full((120, 160, 3), (40 * bundle) % 256, np.uint8)
            Image.fromarray(rgb).save(self.out / f"{image}.png")
            self.log.write("delivered", image=image, epoch=epoch, bundle=bundle, bytes=900)
            self.log.write("decoded", image=image, png=f"{image}.png")
        return key


def _free_tcp_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _post(url: str, body: bytes) -> int:
    req = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


# --- item 7: words for a coordinator -------------------------------------------------------


def test_a_card_keeps_the_links_terms_in_its_details_view(tmp_path):
    photos = Photos(tmp_path)
    key = photos.arrive(0, ["VD 12345"], name="eu5.jpg")
    view = GroundView(photos.out, photos.log_path)
    view.refresh()
    card = view._card(view.images[key])
    main = dict(card.meta)
    assert {"taken", "at", "text after capture", "picture after capture"} <= set(main)
    for term in ("sender epoch", "y group", "first section", "bytes"):  # not on the card
        assert not any(term in k for k in main), (term, main)
        assert term not in card.status
    details = dict(card.details)
    assert details["sender epoch · bundle"] == "7 · 0" and "text after first section" in details
    assert details["photo id"] == "0007000000000000" and not card.warnings
    html = view.card_html(key)
    head, folded = html.split("<details class='tb-details'>")
    assert "sender epoch" not in head and "sender epoch" in folded
    assert "text after capture" in head and "<summary>details</summary>" in folded


def test_a_clock_behind_within_a_second_is_no_negative_figure(tmp_path):
    """Capture times are whole seconds: words landing up to the slack "before" the capture
    are shown as 0.0 s, never as a negative time."""
    photos = Photos(tmp_path)
    key = photos.arrive(0, ["A"], taken=datetime.now().timestamp() + 1.5, picture=False)
    view = GroundView(photos.out, photos.log_path)
    view.refresh()
    card = view._card(view.images[key])
    assert dict(card.meta)["text after capture"] == "0.0 s" and not card.warnings


# --- item 8: search ------------------------------------------------------------------------


def test_search_finds_plates_words_and_file_names(tmp_path):
    photos = Photos(tmp_path)
    plate = photos.arrive(0, ["VD 12345"], name="eu5.jpg")
    sign = photos.arrive(1, ["EXIT 7", "NORD"], name="DSC_0042.JPG")
    view = GroundView(photos.out, photos.log_path)
    view.refresh()
    assert view.search("vd12345") == [plate] and view.search("VD-123") == [plate]
    assert view.search("eu5") == [plate] and view.search("dsc 0042") == [sign]
    assert view.search("nord exit") == [sign]  # each term somewhere on the card
    assert view.search("exit") == [sign] and view.search("0007000000000001") == [sign]  # its id
    assert view.search("") == view.search("  ") == [sign, plate]  # all, newest first
    assert view.search("zurich") == [] and view.search("<script>") == []


WORDS = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(cards=st.lists(WORDS, min_size=1, max_size=4), query=st.text(max_size=300),
       data=st.data())  # fmt: skip
def test_any_query_finds_exactly_the_cards_that_hold_it(tmp_path_factory, cards, query, data):
    folder = tmp_path_factory.mktemp("search")
    photos = Photos(folder)
    keys = [photos.arrive(i, words, picture=False) for i, words in enumerate(cards)]
    view = GroundView(photos.out, photos.log_path)
    view.refresh()
    found = view.search(query)  # never raises, whatever is typed
    assert set(found) <= set(keys) and len(found) == len(set(found))
    folded = _fold(query[:200])
    for key, words in zip(keys, cards, strict=True):
        if folded and any(folded in _fold(w) for w in words):
            assert key in found
    # a piece of a carried word, as typed, finds its card
    i = data.draw(st.integers(0, len(cards) - 1))
    word = data.draw(st.sampled_from(cards[i]))
    a = data.draw(st.integers(0, len(word)))
    b = data.draw(st.integers(a, len(word)))
    piece = word[a:b]
    if _fold(piece):
        assert keys[i] in view.search(piece)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(query=st.text(max_size=400) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_search_requests_answer_json_whatever_the_query(live, query):
    server, keys = live
    status, body = _get(f"{server.url}search?q={urllib.parse.quote(query, safe='')}")
    assert status == 200 and set(json.loads(body)) <= set(keys)


# --- item 8: seen marks --------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A page over a few photos, with seen marks in a ground state file."""
    folder = tmp_path_factory.mktemp("live")
    photos = Photos(folder)
    keys = [photos.arrive(i, [f"W{i}"], picture=False) for i in range(3)]
    DownlinkState(folder / "down.db").close()
    marks = SeenMarks(folder / "down.db")
    server = LiveServer(GroundView(photos.out, photos.log_path, marks=marks), ("127.0.0.1", 0))
    server.view.refresh()  # the cards exist before the first request, whichever test runs first
    server.start()
    yield server, keys
    server.close()
    marks.close()


FORM = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda c, s: urllib.parse.urlencode({"card": c, "seen": s}).encode(),
              st.text(max_size=40) | st.sampled_from(["e7_b0", "e7_b1", "e7_b9"]),
              st.text(max_size=3) | st.sampled_from(["0", "1"])),
)


@settings(max_examples=80, deadline=None)
@given(body=FORM)
def test_seen_requests_change_only_what_they_name(live, body):
    server, keys = live
    view = server.view
    before = {k: view.images[k].seen for k in keys}
    status = _post(f"{server.url}seen", body)
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    card, seen = form.get("card", [""])[0], form.get("seen", [""])[0]
    after = {k: view.images[k].seen for k in keys}
    if seen in ("0", "1") and card in keys:
        assert status == 200 and after == {**before, card: seen == "1"}
        assert (card in view.marks.all()) == (seen == "1")  # stored
    else:
        assert status in (400, 404) and after == before
    assert _get(server.url)[0] == 200  # the page still answers


def test_seen_requests_out_of_bounds(live):
    server, _ = live
    assert _post(f"{server.url}seen", b"x" * 5000) == 413
    assert _post(f"{server.url}elsewhere", b"card=e7_b0&seen=1") == 404
    assert _get(f"{server.url}seen")[0] == 404


def test_a_seen_mark_on_a_state_file_held_by_another_writer_is_refused_not_half_made(tmp_path):
    photos = Photos(tmp_path)
    key = photos.arrive(0, ["A"], picture=False)
    DownlinkState(tmp_path / "down.db").close()
    marks = SeenMarks(tmp_path / "down.db", timeout_s=0.2)
    server = LiveServer(GroundView(photos.out, photos.log_path, marks=marks), ("127.0.0.1", 0))
    server.view.refresh()  # the cards exist before the first request, whichever test runs first
    server.start()
    other = sqlite3.connect(tmp_path / "down.db", isolation_level=None)
    try:
        server.view.refresh()
        other.execute("BEGIN IMMEDIATE")  # the service mid-transaction
        assert _post(f"{server.url}seen", f"card={key}&seen=1".encode()) == 503
        assert not server.view.images[key].seen  # not shown as marked when not stored
        other.execute("COMMIT")
        assert _post(f"{server.url}seen", f"card={key}&seen=1".encode()) == 200
        assert marks.all() == {key}
    finally:
        other.close()
        server.close()
        marks.close()


def test_a_seen_mark_survives_a_ground_restart(tmp_path):
    """The mark goes to the ground's SQLite state: a photo marked seen, the ground service
    restarted, the page built again from its event log shows it seen."""
    config = write_config(tmp_path)
    cfg = load_field_config(config, need="downlink")
    svc = DownlinkService(cfg, web=f"127.0.0.1:{_free_tcp_port()}")
    sender = Sender(svc.link, epoch=11)
    sender.submit(0, Container.parse(tbx(np.random.default_rng(3))).to_sections(), 0.0)
    for _ in range(50):  # the photo, straight into the service
        for f in sender.poll_transmit(0.0):
            svc.receive(f, 0.0)
        for f in svc.rx.poll_transmit(0.0):
            sender.receive(f, 0.0)
        if not sender.active_bundles:
            break
        sender.handle_timeout(1e9)
    svc.web.start()
    try:
        assert svc.web.view.refresh() and list(svc.web.view.images) == ["e11_b0"]
        assert _post(f"{svc.web.url}seen", b"card=e11_b0&seen=1") == 200
    finally:
        svc.close()
    svc = DownlinkService(cfg, web=f"127.0.0.1:{_free_tcp_port()}")
    svc.web.start()
    try:
        page = _get(svc.web.url)[1].decode()
        assert "tb-card tb-seen' id='card-e11_b0'" in page and "seen ✓ (undo)" in page
        assert "marked seen</div><div class='tb-value'>1 of 1<" in page
    finally:
        svc.close()


# --- item 8: the offline basemap -----------------------------------------------------------


def test_an_mbtiles_package_is_served_with_its_rows_flipped(tmp_path):
    z, (x, y) = 14, xyz(*HERE, 14)
    north, south = tile_png((200, 0, 0)), tile_png((0, 0, 200))
    pkg = write_mbtiles(tmp_path / "area.mbtiles", {(z, x, y): north, (z, x, y + 1): south,
                                                   (12, 0, 0): north})  # fmt: skip
    assert open_tiles(pkg).zooms == (12, 14)
    photos = Photos(tmp_path)
    photos.arrive(0, ["A"], picture=False)
    server = LiveServer(GroundView(photos.out, photos.log_path), ("127.0.0.1", 0), tiles=pkg)
    server.start()
    try:
        assert server.tiles_error is None
        assert _get(f"{server.url}tiles/{z}/{x}/{y}.png") == (200, north)  # XYZ row y
        assert _get(f"{server.url}tiles/{z}/{x}/{y + 1}.png") == (200, south)
        for miss in (f"{z}/{x}/{y + 2}.png", f"{z}/{x}/{y}", "99/0/0.png", f"{z}/-1/0.png",
                     f"{z}/{2**z}/0.png", "a/b/c.png", "1/2/3/4.png"):  # fmt: skip
            assert _get(f"{server.url}tiles/{miss}")[0] == 404, miss
        page = _get(server.url)[1].decode()
        assert f"/tiles/{z}/{x}/{y}.png" in page and "no basemap" not in page
    finally:
        server.close()


def _not_mbtiles(folder: Path) -> dict[str, Path]:
    good = area_package(folder / "good.mbtiles", *HERE, range(13, 15), radius=1)
    cases = {"text": folder / "notes.mbtiles", "empty": folder / "empty.mbtiles",
             "cut": folder / "cut.mbtiles", "other": folder / "other.mbtiles",
             "vector": folder / "vector.mbtiles", "none": folder / "missing.mbtiles",
             "bare": folder / "bare.mbtiles"}  # fmt: skip
    cases["text"].write_text("not a tile package\n")
    cases["empty"].write_bytes(b"")
    cases["cut"].write_bytes(good.read_bytes()[:1500])
    db = sqlite3.connect(cases["other"])
    db.execute("CREATE TABLE images (id INTEGER)")
    db.commit()
    db.close()
    write_mbtiles(cases["vector"], {(14, 1, 1): b"\x1a\x00"}, fmt="pbf")
    write_mbtiles(cases["bare"], {})
    return cases


def test_metadata_in_bytes_that_are_not_utf8_still_opens(tmp_path):
    """Found by benchmarks/fuzz_ground_page.py: a metadata value that is not UTF-8 raised
    UnicodeDecodeError out of the check."""
    pkg = area_package(tmp_path / "a.mbtiles", *HERE, range(14, 15), radius=0)
    db = sqlite3.connect(pkg)
    db.execute("UPDATE metadata SET value = CAST(x'c4ff' AS TEXT) WHERE name = 'name'")
    db.commit()
    db.close()
    tiles = open_tiles(pkg)
    assert tiles.name == "\ufffd\ufffd" and tiles.get(14, *xyz(*HERE, 14)) is not None
    tiles.close()


def test_a_damaged_or_foreign_tile_file_is_one_line_and_the_page_works_without_it(tmp_path):
    photos = Photos(tmp_path)
    photos.arrive(0, ["A"], picture=False)
    view = GroundView(photos.out, photos.log_path)
    for what, path in _not_mbtiles(tmp_path).items():
        server = LiveServer(view, ("127.0.0.1", 0), tiles=path).start()
        try:
            err = server.tiles_error
            assert err is not None and "\n" not in err and err.startswith(str(path)), what
            status, body = _get(server.url)
            html = body.decode()
            assert status == 200 and "no basemap: " + str(path) in html
            assert "class='tb-pos'" in html and "<image class='tb-tile'" not in html
            assert _get(f"{server.url}tiles/14/1/1.png")[0] == 404
        finally:
            server.close()


def test_the_ground_service_starts_with_a_damaged_basemap_and_says_so(tmp_path):
    config = write_config(tmp_path)
    (tmp_path / "bad.mbtiles").write_bytes(b"\x00" * 4096)
    config.write_text(config.read_text() + "  tiles: bad.mbtiles\n")
    cfg = load_field_config(config, need="downlink")
    svc = DownlinkService(cfg, web=f"127.0.0.1:{_free_tcp_port()}")
    try:
        line = start_line("downlink", cfg, svc, str(config))
        assert f"no basemap: downlink.tiles: {tmp_path / 'bad.mbtiles'}: not an MBTiles" in line
        logged = [json.loads(x) for x in (tmp_path / "downlink.jsonl").read_text().splitlines()]
        assert any(e["event"] == "basemap" and "bad.mbtiles" in e["error"] for e in logged)
    finally:
        svc.close()


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("pkg")
    return area_package(folder / "a.mbtiles", *HERE, range(13, 15), radius=1).read_bytes()


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.binary(min_size=1, max_size=8)),
                      max_size=6), cut=st.integers(0, 1 << 20) | st.none())  # fmt: skip
def test_a_mutated_package_opens_or_is_one_line_never_a_crash(
    tmp_path_factory, package, edits, cut
):
    data = bytearray(package)
    for at, b in edits:
        at %= len(data)
        data[at : at + len(b)] = b
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    path = tmp_path_factory.mktemp("mut") / "m.mbtiles"
    path.write_bytes(bytes(data))
    try:
        tiles = open_tiles(path)
    except TileError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
        return
    try:
        z, (x, y) = 14, xyz(*HERE, 14)
        for tz, tx, ty in ((z, x, y), (z, x + 1, y), (13, x // 2, y // 2), (0, 0, 0)):
            got = tiles.get(tz, tx, ty)
            assert got is None or (isinstance(got[0], bytes) and got[1].startswith("image/"))
    finally:
        tiles.close()


@settings(max_examples=300)
@given(st.text(max_size=40) | st.from_regex(r"\A-?\d{1,3}/-?\d{1,9}/-?\d{1,9}(\.png)?\Z"))
def test_a_tile_address_is_inside_the_world_or_refused(path):
    got = tile_address(path)
    if got is not None:
        z, x, y = got
        assert 0 <= z <= 24 and 0 <= x < 2**z and 0 <= y < 2**z
        assert tile_address(f"{z}/{x}/{y}.png") == got


def test_a_tile_folder_is_a_basemap_too(tmp_path):
    z, (x, y) = 14, xyz(*HERE, 14)
    (tmp_path / "tiles" / str(z) / str(x)).mkdir(parents=True)
    (tmp_path / "tiles" / str(z) / str(x) / f"{y}.png").write_bytes(tile_png(GREEN))
    folder = open_tiles(tmp_path / "tiles")
    assert folder.zooms == (14, 14) and folder.get(z, x, y)[1] == "image/png"
    assert folder.get(z, x, y + 1) is None
    with pytest.raises(TileError, match="no zoom folders"):
        open_tiles(tmp_path / "tiles" / str(z) / str(x))


# --- the page in a browser -----------------------------------------------------------------


@pytest.mark.slow
def test_page_details_search_seen_marks_and_basemap_in_a_browser(tmp_path, browser_page):
    photos = Photos(tmp_path)
    now = datetime.now().timestamp()
    plate = photos.arrive(0, ["VD 12345"], name="eu5.jpg", at=HERE)
    sign = photos.arrive(1, ["EXIT 7", "NORD"], name="DSC_0042.JPG", at=(46.5211, 6.6281))
    skewed = photos.arrive(2, ["BUS 24"], name="late.jpg", taken=now + 90, at=(46.5202, 6.6300))
    DownlinkState(tmp_path / "down.db").close()
    marks = SeenMarks(tmp_path / "down.db")
    pkg = area_package(tmp_path / "area.mbtiles", *HERE, range(12, 17), radius=3, rgb=GREEN)
    view = GroundView(photos.out, photos.log_path, marks=marks)
    server = LiveServer(view, ("127.0.0.1", 0), tiles=pkg).start()
    page = browser_page
    tiles: list[int] = []
    page.on("response", lambda r: tiles.append(r.status) if "/tiles/" in r.url else None)
    try:
        page.goto(server.url)
        page.wait_for_function("document.getElementById('conn').textContent == 'page: live'")
        # the basemap: tiles requested, served and drawn under the positions
        page.wait_for_load_state("networkidle")
        assert tiles and set(tiles) == {200}
        shot = tmp_path / "map.png"
        page.locator("#map").screenshot(path=str(shot))
        px = np.asarray(Image.open(shot).convert("RGB"))
        share = np.mean(np.all(np.abs(px.astype(int) - GREEN) < 12, axis=-1))
        assert share > 0.5, share  # most of the map is the package's green, not the grid
        # a card: the coordinator's figures; the link's terms folded in its details
        card = page.locator(f"#card-{plate}")
        assert "sender epoch" not in card.inner_text() and "text after capture" in card.inner_text()
        assert not card.locator("details table").is_visible()
        card.locator("summary").click()
        assert card.locator("details table").is_visible()
        assert "sender epoch · bundle" in card.locator("details").inner_text()
        warn = page.locator(f"#card-{skewed} .tb-warn")
        assert warn.is_visible() and "clock is ahead" in warn.inner_text()
        assert "after capture" not in page.locator(f"#card-{skewed}").inner_text()
        # search: a plate typed any way, a word, a file name
        visible = ("[...document.querySelectorAll('.tb-card')].filter(c => !c.hidden)"
                   ".map(c => c.id)")

        def shown(query: str) -> list[str]:
            page.fill("#q", query)
            page.wait_for_timeout(300)
            return sorted(x[5:] for x in page.evaluate(visible))

        assert shown("vd12345") == [plate] and shown("eu5") == [plate]
        assert shown("nord") == [sign] and shown("dsc_0042") == [sign]
        assert shown("zz") == [] and page.locator("#found").inner_text() == "0 found"
        assert shown("") == sorted([plate, sign, skewed])
        # a photo arriving while a search is typed is filtered as it lands
        shown("vd")
        late = photos.arrive(3, ["VD 999"], picture=False)
        other = photos.arrive(4, ["ZH 1"], picture=False)
        page.wait_for_selector(f"#card-{other}", state="attached", timeout=10_000)
        page.wait_for_timeout(500)
        assert sorted(x[5:] for x in page.evaluate(visible)) == sorted([plate, late])
        shown("")
        # seen: marked on the card, kept in the ground's state, and hidden on request
        card.locator(".tb-seen-btn").click()
        page.wait_for_function(f"document.getElementById('card-{plate}').classList"
                               ".contains('tb-seen')")  # fmt: skip
        assert marks.all() == {plate} and "seen ✓" in card.inner_text()
        assert card.locator("details[open]").count() == 1  # the open details view stays open
        page.check("#hide-seen")
        assert not page.locator(f"#card-{plate}").is_visible()
        assert page.locator(f"#card-{sign}").is_visible()
        page.uncheck("#hide-seen")
        page.wait_for_function("document.getElementById('link').textContent"
                               ".includes('1 of 5')")  # fmt: skip
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.screenshot(path=str(tmp_path / "ground_page_tools.png"), full_page=True)
    finally:
        server.close()
        marks.close()
