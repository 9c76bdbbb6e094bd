"""What a rescue coordinator sees, and how soon: a field trial on loopback.

The uplink service (``python -m uplink serve``'s class) takes photos with text from its drop
folder, each with a sidecar capture record, spots and encodes them to a byte budget and sends
them at a radio's bit rate; the ground service decodes them and serves the live page, which
headless Chromium watches. Per image it prints the time from capture to the first word on
the ground, to all its words, to the first picture (y group 1) and to the full picture, from
the services' event logs, and how late the words were against their own air time after the
encode; it saves screenshots of the page along the way.

    python benchmarks/operators_run.py --rate-bps 2400 --budget 2000 --images 4 \
        --shots docs/img          # writes ground_station.png there
    python benchmarks/operators_run.py --no-browser --policy fifo   # before words_first

Needs Debian's chromium (``apt-get install chromium``) for the screenshots; without it, the
figures are still measured (``--no-browser``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from textboost.protocol import LinkConfig
from textboost.settings.queue import EdgeQueue

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "link_sim" / "data" / "kodak_text"
# a search area: positions a few hundred metres apart, headings of a vehicle's camera
SITES = [(46.51970, 6.63230, 90.0), (46.52110, 6.62810, 180.0), (46.51830, 6.62550, 270.0),
         (46.52270, 6.63420, 0.0), (46.52020, 6.62100, 45.0), (46.51660, 6.63050, 135.0)]


def _port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate-bps", type=float, default=2400.0)
    ap.add_argument("--budget", type=int, default=2000, help="bytes per image")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--interval-s", type=float, default=1.0, help="seconds between captures")
    ap.add_argument("--policy", default=LinkConfig().policy,
                    choices=("fifo", "priority_interleave", "words_first"),
                    help="the link's order (default: the field default)")
    ap.add_argument("--max-in-flight", type=int,
                    default=EdgeQueue.model_fields["max_in_flight"].default,
                    help="photos handed to the protocol at once (its words can overtake only "
                    "those; default: the field default)")
    ap.add_argument("--shots", type=Path, help="folder for the screenshots")
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--timeout-s", type=float, default=600.0)
    args = ap.parse_args()

    from downlink.service import DownlinkService
    from textboost.field.config import load_field_config
    from textboost.field.eventlog import read_events
    from uplink.service import UplinkService

    tmp = Path(tempfile.mkdtemp(prefix="operators_"))
    web_port = _port(socket.SOCK_STREAM)
    (tmp / "drop").mkdir()
    cfg_path = tmp / "field.yaml"
    cfg_path.write_text(f"""
link: {{mtu_bytes: 128, arq: deferred, rto_s: 4.0, nak_timeout_s: 2.0, policy: {args.policy}}}
uplink:
  drop_dir: drop
  state_db: up.db
  event_log: up.jsonl
  peer: 127.0.0.1:{(udp := _port(socket.SOCK_DGRAM))}
  rate_bps: {args.rate_bps}
  budget: {{max_bytes: {args.budget}}}
  max_in_flight: {args.max_in_flight}
  poll_s: 0.2
downlink:
  listen: 127.0.0.1:{udp}
  out_dir: received
  state_db: down.db
  event_log: down.jsonl
  web: 127.0.0.1:{web_port}
""")
    cfg = load_field_config(cfg_path)
    stop = threading.Event()
    services: dict[str, object] = {}

    def serve(name: str, make) -> None:
        svc = services[name] = make(cfg, source=str(cfg_path))
        try:
            svc.run(stop, args.timeout_s)
        finally:
            svc.close()

    threads = [threading.Thread(target=serve, args=(n, m), daemon=True)
               for n, m in (("ground", DownlinkService), ("edge", UplinkService))]
    for t in threads:
        t.start()
    while len(services) < 2:
        time.sleep(0.1)
    if (warm := services["edge"].warm) is not None:  # a vehicle is up before it shoots
        warm.exception(args.timeout_s)
    sources = sorted(IMAGES.glob("*.png"))[: args.images]
    captured: dict[str, float] = {}
    for src, (lat, lon, hdg) in zip(sources, SITES, strict=False):
        now = datetime.now(UTC).replace(microsecond=0)
        captured[src.stem] = now.timestamp()
        shutil.copy(src, tmp / "drop" / f"{src.stem}.tmp")
        (tmp / "drop" / f"{src.stem}.json").write_text(json.dumps(
            {"capture": {"time": now.isoformat(), "lat": lat, "lon": lon, "heading_deg": hdg}}))
        (tmp / "drop" / f"{src.stem}.tmp").rename(tmp / "drop" / f"{src.stem}.png")
        time.sleep(args.interval_s)  # a camera's pace

    shots: list[tuple[float, Path]] = []
    mid: Path | None = None
    browser = None
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not args.no_browser and exe:
        from playwright.sync_api import sync_playwright

        pw = sync_playwright().start()
        browser = pw.chromium.launch(executable_path=exe, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://127.0.0.1:{web_port}/")
    t0 = time.time()
    while time.time() - t0 < args.timeout_s:
        done = [e for e in read_events(tmp / "down.jsonl") if e["event"] == "decoded"]
        due = not shots or time.time() - shots[-1][0] > 2
        if browser is not None and len(shots) < 60 and due:
            path = tmp / f"shot_{len(shots):02d}.png"
            page.screenshot(path=str(path), full_page=True)
            shots.append((time.time(), path))
            text = page.locator("#cards").inner_text()
            if mid is None and "complete" in text and ("on its way" in text or "sharpen" in text):
                mid = path  # a picture done, another's words already there: the page's point
        if len(done) >= len(sources):
            break
        time.sleep(0.5)
    if browser is not None:
        time.sleep(1.0)
        page.screenshot(path=str(tmp / "shot_final.png"), full_page=True)
        shots.append((time.time(), tmp / "shot_final.png"))
        browser.close()
        pw.stop()
    stop.set()
    for t in threads:
        t.join(60)

    up = list(read_events(tmp / "up.jsonl"))
    down = list(read_events(tmp / "down.jsonl"))
    _report(args, captured, up, down)
    if args.shots and shots:
        args.shots.mkdir(parents=True, exist_ok=True)
        shutil.copy(mid or shots[len(shots) // 2][1], args.shots / "ground_station_mid.png")
        shutil.copy(shots[-1][1], args.shots / "ground_station.png")
        print(f"screenshots: {args.shots}/ground_station.png, ground_station_mid.png "
              f"(all in {tmp})")
    print(f"run folder: {tmp}")


def _report(args, captured: dict[str, float], up: list[dict], down: list[dict]) -> None:
    """Per image: seconds from capture to encoded (edge), the first word and all words on
    the ground, the first picture (y group 1) and the full picture; the words' delay after
    the encode beyond their own air time (header and text section at the link rate); then
    the medians."""
    name_of = {(e["epoch"], e["bundle"]): Path(e["image"]).stem
               for e in up if e["event"] == "submitted"}  # fmt: skip
    delivered = {e["image"]: name_of.get((e["epoch"], e["bundle"]))
                 for e in down if e["event"] == "delivered"}  # fmt: skip
    first: dict[tuple[str | None, str], float] = {}
    for e in up:
        if e["event"] == "encoded":
            first.setdefault((Path(e["image"]).stem, "encoded"), e["t"])
    words: dict[str | None, int] = {}
    text_bytes: dict[str | None, int] = {}
    for e in down:
        name = name_of.get((e.get("epoch"), e.get("bundle"))) or delivered.get(e.get("image"))
        kind = e["event"]
        if kind == "group" and e.get("group") != 1:
            continue
        first.setdefault((name, kind), e["t"])
        if kind == "text":
            words[name] = len(e.get("words") or [])
            if e.get("complete", True):
                first.setdefault((name, "all words"), e["t"])
                text_bytes[name] = int(e.get("bytes") or 0)
    print(f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} cores, "
          f"torch CPU; link {args.rate_bps:g} bit/s, {args.budget} B per image, MTU 128, "
          f"policy {args.policy}, max_in_flight {args.max_in_flight}; load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'image':<16}{'words':>6}{'encoded s':>11}{'1st word s':>11}{'all words s':>12}"
          f"{'group 1 s':>11}{'picture s':>11}{'words late s':>13}")
    cols = ("encoded", "text", "all words", "group", "decoded")
    per: dict[str, list[float]] = {c: [] for c in cols}
    for name, t_cap in captured.items():
        cells = []
        for c in cols:
            t = first.get((name, c))
            cells.append("-" if t is None else f"{t - t_cap:.1f}")
            if t is not None:
                per[c].append(t - t_cap)
        late = "-"
        if (name, "all words") in first and (name, "encoded") in first:
            air = text_bytes.get(name, 0) * 8 / args.rate_bps
            late = f"{first[(name, 'all words')] - first[(name, 'encoded')] - air:.1f}"
        print(f"{name:<16}{words.get(name, 0):>6}{cells[0]:>11}{cells[1]:>11}{cells[2]:>12}"
              f"{cells[3]:>11}{cells[4]:>11}{late:>13}")
    # the work the trial's services did for nothing, and the vehicle's encode queue
    done_at = {(e["epoch"], e["bundle"]): e["t"] for e in down if e["event"] == "delivered"}
    made = [e for e in down if e["event"] == "group" and not e.get("error")]
    late = [e for e in made if e["t"] > done_at.get((e["epoch"], e["bundle"]), float("inf"))]
    dropped = [e for e in down if e["event"] == "preview_dropped"]
    cut = [e["ran_s"] for e in dropped if e["ran_s"] > 0]
    print(f"previews: {len(made)} made ({len(late)} finished after their photo was delivered), "
          f"{len(cut)} stopped mid-decode (after {sum(cut):.1f} s in all), "
          f"{len(dropped) - len(cut)} skipped before they started")
    enc = [e for e in up if e["event"] == "encoded" and e.get("encode_s") is not None]
    if enc:
        print("vehicle encodes (s): " + ", ".join(
            f"{e.get('name')} {e['encode_s']} (waited {e['waited_s']})" for e in enc))
    queued = [e.get("queued", 0) for e in up if e["event"] == "encoding"]
    over = [first[(n, "all words")] - t - text_bytes.get(n, 0) * 8 / args.rate_bps
            for n, t in captured.items() if (n, "all words") in first]
    if queued and over:
        print(f"vehicle encode queue: at most {max(queued)} photo(s) waiting when one was "
              f"handed to the encoder; all words on the page at most {max(over):.1f} s after "
              f"capture plus their own air time (median {statistics.median(over):.1f} s)")
    if per["text"] and per["decoded"]:
        text, pic = statistics.median(per["text"]), statistics.median(per["decoded"])
        after = {c: statistics.median(
            [first[(n, c)] - first[(n, "encoded")] for n in captured
             if (n, c) in first and (n, "encoded") in first]) for c in ("text", "decoded")}
        print(f"median from capture: words {text:.1f} s, full picture {pic:.1f} s; from the "
              f"end of the edge encode: words {after['text']:.1f} s, full picture "
              f"{after['decoded']:.1f} s")


if __name__ == "__main__":
    main()
