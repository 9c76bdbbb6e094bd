"""The ground station's live page (``python -m downlink serve --web HOST:PORT``).

A coordinator watches it: each image appears when its text section lands (the strings and
where and when it was taken, before the picture), its preview sharpens as y groups arrive,
and the link's state sits on top; the link's own terms wait in each card's details view. A
search box finds photos by carried word, plate or file name (:meth:`GroundView.search`), a
button marks a photo seen (kept in the ground's state: :class:`~downlink.state.SeenMarks`).
Everything is served by the receiver itself from the package (no CDN, no map tiles from the
Internet: capture positions are drawn on a lat/lon grid, over an offline basemap when given:
:mod:`downlink.tiles`).

:class:`GroundView` builds the state from what the service already writes, so the page
adds no coupling to the protocol: the JSONL event log (:mod:`textboost.field.eventlog`)
and the files in the output folder (``partial/eE_bB.json|png`` while an image is under
reassembly, ``NAME.json|png`` once delivered). :class:`LiveServer` serves the page, HTML
fragments of each part (rendered by :mod:`textboost.web`, the components link_sim's
report uses too) and a Server-Sent Events stream that names the parts that changed; the
page fetches just those.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from downlink.state import SeenMarks
from downlink.tiles import MBTiles, TileError, TileFolder, open_tiles, tile_address
from textboost.bitstream.capture import parse_time
from textboost.web import ImageCard, Outline, image_card, page, text_crops

__all__ = ["GroundView", "ImageState", "LiveServer", "receiver_figures"]

POLL_S = 0.2  # how often the event log is read
CLOCK_SLACK_S = 2.0  # capture-time rounding (1 s) and log timing: less is not a clock fault
PAGE_CARDS = 200  # newest images on a freshly loaded page (later ones arrive live)
KEEP_CHANGES = 10_000  # change records kept for SSE clients that fall behind
_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")
MAX_QUERY = 200  # characters of a search query looked at
_Rows = list[tuple[str, str]]  # (label, value) on a card


def _drawn(word: dict) -> bool:
    """Whether the fusion block may have drawn a word of a words file (its ``restored``
    strength above 0; a file from before the field, or a value that is no number: yes)."""
    r = word.get("restored", 1.0)
    return not isinstance(r, int | float) or isinstance(r, bool) or r > 0


def _fold(text: str) -> str:
    """What search compares: case folded, without spaces and punctuation."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


@dataclass(slots=True)
class ImageState:
    """One image as the page shows it; ``key`` = ``eEPOCH_bBUNDLE`` (stable through delivery)."""

    key: str
    epoch: int
    bundle: int
    first_t: float
    name: str | None = None  # the delivered image's name (the .tbx's SHA-256 prefix)
    text_t: float | None = None
    delivered_t: float | None = None
    decoded_t: float | None = None
    groups: int = 0
    bytes: int = 0
    width: int | None = None
    height: int | None = None
    words: list[dict[str, Any]] = field(default_factory=list)
    capture: dict[str, Any] | None = None
    png: str | None = None  # a file name under the output folder (partial/... or NAME.png)
    duplicates: int = 0
    error: str | None = None
    seen: bool = False  # marked seen by a coordinator (persisted: :class:`SeenMarks`)
    version: int = 0  # bumped on every change (cache key of the card and its picture)


class GroundView:
    """The page's state, fed by the event log; thread-safe. ``link_stats``: live figures
    from the receiver (frames, drops, recent loss), shown in the link block."""

    def __init__(
        self,
        out_dir: str | Path,
        event_log: str | Path,
        link_stats: Callable[[], dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.time,
        marks: SeenMarks | None = None,
    ) -> None:
        self.out = Path(out_dir)
        self.log_path = Path(event_log)
        self.link_stats = link_stats
        self.clock = clock
        self.images: dict[str, ImageState] = {}
        self._by_name: dict[str, str] = {}
        self.drops: dict[str, int] = {}
        self.last_frame_t: float | None = None  # the newest event a frame caused
        self.started_t: float | None = None
        self._offset = 0
        self._partial = b""
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._changes: list[tuple[int, str]] = []  # (seq, part)
        self._seq = 0
        self._crops: dict[str, tuple[int, list]] = {}  # per image: (version, crops)
        self.marks = marks
        self._seen = marks.all() if marks is not None else set()  # card keys marked seen

    # --- reading the log ----------------------------------------------------------------

    def refresh(self) -> list[str]:
        """Read new whole lines of the event log; returns the parts that changed
        (``card:KEY``, ``link``, ``map``). Safe to call from several threads."""
        with self._read_lock:  # one reader of the file at a time: no line read twice
            try:
                with open(self.log_path, "rb") as f:
                    f.seek(self._offset)
                    chunk = f.read()
            except FileNotFoundError:
                return []
            self._offset += len(chunk)
            lines = (self._partial + chunk).split(b"\n")
            self._partial = lines.pop()  # an unfinished last line waits for its end
            return self._apply_lines(lines)

    def _apply_lines(self, lines: list[bytes]) -> list[str]:
        changed: dict[str, None] = {}
        with self._lock:
            for line in lines:
                try:
                    ev = json.loads(line)
                    parts = self._apply(ev) if ev.get("node") == "downlink" else []
                except (ValueError, TypeError, KeyError, AttributeError):
                    continue  # a line cut by a power loss, or not the service's
                for part in parts:
                    changed[part] = None
            self._record(changed)
        return list(changed)

    def _record(self, changed: dict[str, None]) -> None:
        """Number the changed parts for the page's event stream (under ``_lock``)."""
        if changed:
            changed["link"] = None
        for part in changed:
            self._seq += 1
            self._changes.append((self._seq, part))
        del self._changes[:-KEEP_CHANGES]

    def _image(self, ev: dict[str, Any]) -> ImageState | None:
        epoch, bundle = ev.get("epoch"), ev.get("bundle")
        if epoch is None or bundle is None:
            key = self._by_name.get(str(ev.get("image")))
            return self.images.get(key) if key else None
        key = f"e{epoch}_b{bundle}"
        img = self.images.get(key)
        if img is None:
            img = self.images[key] = ImageState(key, int(epoch), int(bundle), float(ev["t"]))
            img.seen = key in self._seen
        return img

    def _apply(self, ev: dict[str, Any]) -> list[str]:
        kind, t = ev.get("event"), float(ev.get("t", 0.0))
        if kind == "restart":
            self.started_t = t
            return ["link"]
        if kind == "frame_dropped":
            reason = str(ev.get("reason"))
            self.drops[reason] = self.drops.get(reason, 0) + 1
            return ["link"]
        if kind in ("text", "group", "delivered", "duplicate"):
            self.last_frame_t = t
        if kind == "abandoned":  # it comes again as a new bundle: its card goes
            key = f"e{ev.get('epoch')}_b{ev.get('bundle')}"
            return [f"card:{key}", "map"] if self.images.pop(key, None) else []
        img = self._image(ev)
        if img is None:
            return []
        if kind == "duplicate":
            return self._duplicate(img, ev)
        parts = [f"card:{img.key}"]
        if kind == "text":
            img.text_t = t
            img.bytes = max(img.bytes, int(ev.get("bytes") or 0))
            doc = self._read_json(self.out / "partial" / f"{img.key}.json")
            self._take_doc(img, doc)
            if not img.words and ev.get("words"):
                img.words = [{"text": w, "quad": None} for w in ev["words"]]
            parts.append("map")
        elif kind == "group":
            img.groups = max(img.groups, int(ev.get("group") or 0))
            img.bytes = max(img.bytes, int(ev.get("bytes") or 0))
            if ev.get("png") and img.name is None:
                img.png = f"partial/{Path(ev['png']).name}"
            if ev.get("error"):
                img.error = ev["error"]
        elif kind == "delivered":
            img.delivered_t, img.name = t, ev.get("image")
            img.bytes = int(ev.get("bytes") or img.bytes)
            self._by_name[str(img.name)] = img.key
            self._take_doc(img, self._read_json(self.out / f"{img.name}.json"))
            parts.append("map")
        elif kind == "decoded":
            if ev.get("png"):
                img.decoded_t, img.png, img.error = t, Path(ev["png"]).name, None
            else:
                img.error = ev.get("error")
        img.version += 1
        return parts

    def _duplicate(self, img: ImageState, ev: dict[str, Any]) -> list[str]:
        """A resent copy of a stored image: counted on that image's card; the copy's own
        card (its words landed before the bundle was recognised) goes."""
        name = str(ev.get("image"))
        first = self.images.get(self._by_name.get(name, ""))
        if first is not None and first is not img:
            first.duplicates += 1
            first.version += 1
            del self.images[img.key]
            return [f"card:{img.key}", f"card:{first.key}", "map"]
        # the stored copy's card is not in this log: this card stands for the image
        img.duplicates += 1
        img.name, img.delivered_t = name, img.delivered_t or float(ev.get("t", 0.0))
        self._by_name[name] = img.key
        self._take_doc(img, self._read_json(self.out / f"{name}.json"))
        if (self.out / f"{name}.png").exists():
            img.png, img.decoded_t = f"{name}.png", img.delivered_t
        img.version += 1
        return [f"card:{img.key}", "map"]

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any]:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {}
        return doc if isinstance(doc, dict) else {}

    @staticmethod
    def _take_doc(img: ImageState, doc: dict[str, Any]) -> None:
        img.width = doc.get("width", img.width)
        img.height = doc.get("height", img.height)
        if doc.get("words"):
            img.words = doc["words"]
        if doc.get("capture"):
            img.capture = doc["capture"]
        if doc.get("error"):
            img.error = doc["error"]

    def changes_since(self, seq: int) -> tuple[int, list[str]]:
        """The parts changed after change number ``seq``, and the newest number."""
        with self._lock:
            parts = list(dict.fromkeys(p for s, p in self._changes if s > seq))
            return self._seq, parts

    # --- a coordinator's marks and search ------------------------------------------------

    def mark_seen(self, key: str, seen: bool) -> bool:
        """Mark the photo of card ``key`` seen (or not), durably when the view has
        :class:`SeenMarks`; False: no such card (nothing is stored)."""
        with self._lock:
            img = self.images.get(key)
            if img is None:
                return False
            if self.marks is not None:
                self.marks.mark(key, seen)
            (self._seen.add if seen else self._seen.discard)(key)
            img.seen = seen
            img.version += 1
            self._record({f"card:{key}": None})
        return True

    def search(self, query: str) -> list[str]:
        """The card keys whose carried words or file name hold ``query``, newest first.
        Case, spaces and punctuation are ignored (``vd12345`` finds the plate ``VD 12345``);
        a query of several terms finds a card holding each of them; an empty one finds all."""
        query = query[:MAX_QUERY]
        whole = _fold(query)
        terms = [t for t in map(_fold, query.split()) if t]
        with self._lock:
            imgs = sorted(self.images.values(), key=lambda i: i.first_t, reverse=True)
            fields = {i.key: [_fold(str(w.get("text", ""))) for w in i.words]
                      + [_fold(str((i.capture or {}).get("name", ""))), _fold(i.name or "")]
                      for i in imgs}  # fmt: skip
        if not whole:
            return list(fields)
        return [k for k, f in fields.items() if any(whole in x for x in f)
                or (terms and all(any(t in x for x in f) for t in terms))]  # fmt: skip

    # --- rendering ----------------------------------------------------------------------

    def card_html(self, key: str) -> str | None:
        with self._lock:
            img = self.images.get(key)
            if img is None:
                return None
            return image_card(self._card(img))

    def _card(self, img: ImageState) -> ImageCard:
        src = f"/files/{img.png}?v={img.version}" if img.png else None
        if img.decoded_t is not None:
            status = "complete"
        elif img.delivered_t is not None:
            status = "delivered, decoding"
        elif img.groups:
            status = "preview: sharpening as the picture arrives"
        else:
            status = "text landed, picture on its way"
        meta: list[tuple[str, str]] = []
        c = img.capture or {}
        if c.get("time"):
            meta.append(("taken", c["time"].replace("T", " ")))
        if "lat" in c:
            meta.append(("at", f"{c['lat']:.5f}, {c['lon']:.5f}"))
        for key, label, unit in (("alt_m", "alt", " m"), ("heading_deg", "heading", "°"),
                                 ("camera", "camera", "")):  # fmt: skip
            if key in c:
                meta.append((label, f"{c[key]}{unit}"))
        timing, details, warnings = self._timing(img)
        meta += timing
        if img.duplicates:
            meta.append(("resent copies", str(img.duplicates)))
        if img.error:
            meta.append(("error", img.error))
        details = [
            ("photo id", img.name or "not delivered yet"),
            ("sender epoch · bundle", f"{img.epoch} · {img.bundle}"),
            ("bytes received", str(img.bytes)),
            ("y groups decoded", str(img.groups)),
            *details,
        ]
        return ImageCard(
            title=self._title(img),
            thumb_src=src,
            href=src,
            status=status,
            meta=meta,
            strings=[w["text"] for w in img.words] if img.text_t or img.words else None,
            crops=self._crops_of(img),
            card_id=f"card-{img.key}",
            outlines=self._outlines(img),
            warnings=warnings,
            details=details,
            seen=img.seen,
        )

    @staticmethod
    def _title(img: ImageState) -> str:
        """The camera's file name when the sender carried it, then the photo's one id: the
        stored image's name (its content hash) once delivered, its key until then (both
        unique across restarts; bundle numbers restart with each vehicle epoch)."""
        source = (img.capture or {}).get("name")
        ident = f"image {img.name}" if img.name else f"{img.key} · arriving"
        return f"{source} · {ident}" if source else ident

    @staticmethod
    def _outlines(img: ImageState) -> list[Outline]:
        """The carried words' regions over the decoded picture (where the fusion block
        may have drawn them: the sender's reading, not camera pixels); a word the sender
        kept out of the block's reach is the camera's pixels, and has none."""
        if not img.png or not img.width or not img.height:
            return []
        return [
            Outline(
                [(x / img.width, y / img.height) for x, y in w["quad"]],
                str(w.get("text", "")),
                w.get("score"),
            )
            for w in img.words
            if w.get("quad") and _drawn(w)
        ]

    def _timing(self, img: ImageState) -> tuple[_Rows, _Rows, list[str]]:
        """Time to text and to picture: from the capture time when it was sent (what a
        coordinator cares about: on the card), from the first section seen (the link's own
        figure: in the details). A photo that arrived more than :data:`CLOCK_SLACK_S`
        before it was taken says the vehicle's clock is ahead: a warning, and no figure
        from capture (a negative or shortened one would mislead); within the slack
        (capture times are whole seconds) a figure below zero is shown as 0."""
        main: _Rows = []
        details: _Rows = []
        warnings: list[str] = []
        done = img.decoded_t or img.delivered_t
        if img.text_t is not None:
            details.append(("text after first section", f"{img.text_t - img.first_t:.1f} s"))
        if done is not None:
            details.append(("picture after first section", f"{done - img.first_t:.1f} s"))
        try:
            t0 = parse_time(str((img.capture or {})["time"])).timestamp()
        except (KeyError, ValueError):
            return main, details, warnings
        arrived = img.text_t if img.text_t is not None else img.first_t
        if arrived < t0 - CLOCK_SLACK_S:
            warnings.append(f"clock: taken {t0 - arrived:.0f} s after it arrived here, so the "
                            "vehicle's clock is ahead of the ground's; times from capture "
                            "are not shown")  # fmt: skip
            details.append(("arrival minus capture time", f"{arrived - t0:.1f} s"))
            return main, details, warnings
        if img.text_t is not None:
            main.append(("text after capture", f"{max(0.0, img.text_t - t0):.1f} s"))
        if done is not None:
            main.append(("picture after capture", f"{max(0.0, done - t0):.1f} s"))
        return main, details, warnings

    def _crops_of(self, img: ImageState) -> list:
        """Each word cut from the decoded picture (the ground has no original)."""
        if not img.png or not any(w.get("quad") for w in img.words):
            return []
        version, crops = self._crops.get(img.key, (-1, []))
        if version != img.version:
            words = [w for w in img.words if w.get("quad")]
            try:
                crops = text_crops(words, None, self.out / img.png)
            except (OSError, ValueError):
                crops = []
            self._crops[img.key] = (img.version, crops)
        return crops

    def link_html(self) -> str:
        """The link block: what a coordinator reads (last contact, photos delivered and
        arriving, marked seen, recent loss) on top; the counters a technician reads (bytes
        per image, drops by reason, frames, NAKs, FINs, sender epoch) under "link details"."""
        with self._lock:
            now = self.clock()
            images = list(self.images.values())
            main: _Rows = []
            details: _Rows = []
            stats = dict(self.link_stats()) if self.link_stats else {}
            last = stats.pop("last_frame_t", self.last_frame_t)
            main.append(("last contact", "no frame yet" if last is None
                         else f"{max(0.0, now - last):.0f} s ago"))  # fmt: skip
            delivered = [i for i in images if i.delivered_t is not None]
            main.append(("images delivered", str(len(delivered))))
            main.append(("under reassembly", str(len(images) - len(delivered))))
            main.append(("marked seen", f"{sum(i.seen for i in images)} of {len(images)}"))
            if delivered:
                mean = sum(i.bytes for i in delivered) / len(delivered)
                details.append(("bytes per image", f"{mean:.0f}"))
            details.append(("frames dropped", ", ".join(f"{k} {v}" for k, v in
                                                        sorted(self.drops.items())) or "0"))
        if "recent loss" in stats:
            main.append(("recent loss", str(stats.pop("recent loss"))))
        details += [(k.replace("_", " "), str(v)) for k, v in stats.items()]

        def cells(rows: _Rows) -> str:
            return "".join(f"<div class='tb-check'><div class='tb-label'>{escape(k)}</div>"
                           f"<div class='tb-value'>{escape(v)}</div></div>" for k, v in rows)

        return (f"<section class='tb-verdict' id='link'><div class='tb-checks'>{cells(main)}"
                "</div><details class='tb-details'><summary>link details</summary>"
                f"<div class='tb-checks'>{cells(details)}</div></details></section>")

    def map_svg(
        self, zooms: tuple[int, int] | None = None, width: int = 640, height: int = 360
    ) -> str:
        """Capture positions on a Web-Mercator lat/lon grid, over the basemap's tiles
        (``/tiles/Z/X/Y.png``) when it has ``zooms`` (its least and greatest zoom)."""
        with self._lock:
            pts = [(i.key, i.capture["lat"], i.capture["lon"], [w["text"] for w in i.words])
                   for i in self.images.values() if i.capture and "lat" in i.capture]  # fmt: skip
        pts = [p for p in pts if all(isinstance(v, float | int) and math.isfinite(v)
                                     for v in p[1:3])]  # fmt: skip
        return _map_svg(pts, width, height, zooms)


def receiver_figures(
    rx: Any,
    first_pn: int | None = None,
    started_t: float | None = None,
    last_frame_t: float | None = None,
) -> dict[str, Any]:
    """A :class:`~textboost.protocol.Receiver`'s live figures for the link block. The recent
    loss is read off the replay window: the sender numbers every frame it sends (resends
    too), so the share of the last numbers never accepted is the forward link's loss over
    them (frames still in flight or reordered count as lost for now). Only numbers from
    ``first_pn`` on count — the first this receiver accepted in the sender's current epoch
    since it started — so frames sent before a restart of either side (to a ground that was
    down, or under an older epoch) are not counted as lost. ``last_frame_t`` (wall time of
    the last accepted frame) gives ``last contact``; counters run from ``started_t``."""
    st = rx.stats
    win = rx.replay_state
    since = "" if started_t is None else " since " + time.strftime(
        "%H:%M:%S", time.localtime(started_t))  # fmt: skip
    out: dict[str, Any] = {
        "last_frame_t": last_frame_t,
        f"frames received{since}": st.frames_received,
        f"bytes received{since}": st.bytes_received,
        "NAK frames sent": st.nak_frames,
        "FIN frames sent": st.fin_frames,
    }
    if win.epoch is not None and first_pn is not None and win.top >= first_pn:
        span = min(rx.config.replay_window, win.top - first_pn + 1)
        got = bin(win.seen & ((1 << span) - 1)).count("1")
        out["recent loss"] = f"{100 * (1 - got / span):.1f} % of the last {span} frames"
        out["sender epoch"] = win.epoch
    return out


# Web Mercator's edge (the world is square there): positions beyond it are drawn on it
MERC_LAT = math.degrees(math.atan(math.sinh(math.pi)))  # 85.0511...


def _clamp_lat(lat: float) -> float:
    return max(-MERC_LAT, min(MERC_LAT, lat))


def _merc(lat: float, lon: float) -> tuple[float, float]:
    """Web Mercator in units of the world (0..1 both ways, y down)."""
    s = math.sin(math.radians(_clamp_lat(lat)))
    return (lon + 180.0) / 360.0, 0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)


def _nice(span: float) -> float:
    """A grid step of 1, 2 or 5 × 10^k degrees giving 3 to 8 lines over ``span``."""
    raw = max(span, 1e-6) / 5
    k = 10 ** math.floor(math.log10(raw))
    return next(m * k for m in (1, 2, 5, 10) if m * k >= raw)


def _ticks(lo: float, hi: float, step: float) -> list[float]:
    """Grid values at multiples of ``step`` in [lo, hi] (by index: no summed float drift)."""
    first = math.ceil(lo / step)
    return [k * step for k in range(first, math.floor(hi / step) + 1)]


MAX_TILES = 64  # tiles drawn under one map at most (a zoom below the package's least)


def _map_svg(pts: list, width: int, height: int, zooms: tuple[int, int] | None) -> str:
    if not pts:
        return ("<svg id='map' class='tb-map' viewBox='0 0 640 60' width='100%'>"
                "<text x='10' y='35'>no capture positions yet</text></svg>")  # fmt: skip
    # the box around the points as drawn (polar ones on the Mercator edge), never empty:
    # at least `pad` tall and wide, so the scale below is finite
    lats = [_clamp_lat(p[1]) for p in pts]
    lons = [max(-180.0, min(180.0, p[2])) for p in pts]
    pad = max(0.002, 0.15 * max(max(lats) - min(lats), max(lons) - min(lons)))
    lat0, lat1 = _clamp_lat(min(lats) - pad), _clamp_lat(max(lats) + pad)
    lon0, lon1 = min(lons) - pad, max(lons) + pad
    (x0, y1), (x1, y0) = _merc(lat0, lon0), _merc(lat1, lon1)
    scale = min(width / (x1 - x0), height / (y1 - y0))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2

    def xy(lat: float, lon: float) -> tuple[float, float]:
        mx, my = _merc(lat, lon)
        return width / 2 + (mx - cx) * scale, height / 2 + (my - cy) * scale

    out = [f"<svg id='map' class='tb-map' viewBox='0 0 {width} {height}' width='100%' "
           f"style='max-width:{width}px;background:#eef3f7;border:1px solid #bbb'>"]  # fmt: skip
    if zooms is not None:
        # the zoom whose tiles are drawn near 256 px, within the package's; more tiles than
        # MAX_TILES (a view wider than its least zoom covers) draw none
        z = max(zooms[0], min(zooms[1], 19, max(0, int(math.log2(scale / 256)))))
        n = 2**z
        xs = range(max(0, int((cx - width / 2 / scale) * n)),
                   min(n, int((cx + width / 2 / scale) * n) + 1))
        ys = range(max(0, int((cy - height / 2 / scale) * n)),
                   min(n, int((cy + height / 2 / scale) * n) + 1))  # fmt: skip
        size = scale / n
        cells = [(x, y) for x in xs for y in ys] if len(xs) * len(ys) <= MAX_TILES else []
        for tx, ty in cells:
            px = width / 2 + (tx / n - cx) * scale
            py = height / 2 + (ty / n - cy) * scale
            out.append(f"<image class='tb-tile' href='/tiles/{z}/{tx}/{ty}.png' x='{px:.1f}' "
                       f"y='{py:.1f}' width='{size:.1f}' height='{size:.1f}'/>")
    step = _nice(max(lat1 - lat0, lon1 - lon0))
    digits = max(0, -math.floor(math.log10(step)))
    for lat in _ticks(lat0, lat1, step):
        _, y = xy(lat, lon0)
        out.append(f"<line x1='0' x2='{width}' y1='{y:.1f}' y2='{y:.1f}' stroke='#9ab' "
                   f"stroke-width='0.5'/><text x='3' y='{y - 2:.1f}' font-size='10' "
                   f"fill='#457'>{lat:.{digits}f}°</text>")  # fmt: skip
    for lon in _ticks(lon0, lon1, step):
        x, _ = xy(lat0, lon)
        out.append(f"<line y1='0' y2='{height}' x1='{x:.1f}' x2='{x:.1f}' stroke='#9ab' "
                   f"stroke-width='0.5'/><text x='{x + 2:.1f}' y='{height - 3}' font-size='10' "
                   f"fill='#457'>{lon:.{digits}f}°</text>")  # fmt: skip
    for key, plat, plon, strings in pts:
        x, y = xy(plat, plon)
        label = " | ".join(strings) or key
        label = label if len(label) <= 28 else label[:27] + "…"  # the card has them all
        right = x + 8 + 6.2 * len(label) <= width  # else the label goes left of the point
        lx, anchor = (x + 8, "start") if right else (x - 8, "end")
        out.append(f"<a href='#card-{escape(key)}'><circle class='tb-pos' cx='{x:.1f}' "
                   f"cy='{y:.1f}' r='6' fill='#c62828' stroke='#fff' stroke-width='1.5'>"
                   f"<title>{escape(label)} ({plat:.5f}, {plon:.5f})</title></circle>"
                   f"<text x='{lx:.1f}' y='{y + 4:.1f}' font-size='11' text-anchor='{anchor}' "
                   f"paint-order='stroke' stroke='#eef3f7' stroke-width='3'>{escape(label)}"
                   "</text></a>")  # fmt: skip
    out.append("</svg>")
    return "".join(out)


_SCRIPT = """
const es = new EventSource('/events?since=' + document.body.dataset.seq);
const cards = document.getElementById('cards'), q = document.getElementById('q');
let matching = null;  // the card keys the search found (null: no search)
function filter() {
  for (const c of cards.querySelectorAll('.tb-card'))
    c.hidden = matching !== null && !matching.has(c.id.slice(5));
  document.getElementById('found').textContent =
    matching === null ? '' : matching.size + ' found';
}
async function search() {
  const v = q.value.trim();
  if (!v) { matching = null; filter(); return; }
  const r = await fetch('/search?q=' + encodeURIComponent(v), {cache: 'no-store'});
  if (r.ok && q.value.trim() === v) { matching = new Set(await r.json()); filter(); }
}
async function swap(part) {
  const url = part.startsWith('card:') ? '/card/' + part.slice(5) : '/' + part;
  const r = await fetch(url, {cache: 'no-store'});
  const id = part.startsWith('card:') ? 'card-' + part.slice(5) : part;
  const old = document.getElementById(id);
  if (r.status === 404 && old) old.remove();  // given up or merged: the image comes again
  if (!r.ok) return;
  const html = await r.text();
  const tmp = document.createElement('div'); tmp.innerHTML = html;
  const node = tmp.firstElementChild;
  const open = old && old.querySelector('details[open]');  // a details view stays open
  if (open && node.querySelector('details')) node.querySelector('details').open = true;
  if (old) old.replaceWith(node);
  else if (part.startsWith('card:')) cards.prepend(node);
}
es.onmessage = async (m) => {
  const parts = JSON.parse(m.data);
  await Promise.all(parts.map(swap));
  if (parts.some(p => p.startsWith('card:'))) await search();
};
es.onerror = () => { document.getElementById('conn').textContent = 'page: reconnecting…'; };
es.onopen = () => { document.getElementById('conn').textContent = 'page: live'; };
q.addEventListener('input', search);
document.getElementById('hide-seen').addEventListener('change', (e) => {
  document.body.classList.toggle('tb-hide-seen', e.target.checked);
});
cards.addEventListener('click', async (e) => {
  const b = e.target.closest('.tb-seen-btn');
  if (!b) return;
  const card = b.closest('.tb-card').id.slice(5);
  const r = await fetch('/seen', {method: 'POST',
    body: new URLSearchParams({card: card, seen: b.dataset.seen})});
  if (r.ok) swap('card:' + card);
  else b.textContent = 'not stored (' + r.status + '): try again';
});
"""
_CSS = """
.tb-tools{display:flex;gap:1em;align-items:center;flex-wrap:wrap;margin:.4em 0 .8em}
.tb-tools input[type=search]{font-size:1em;padding:.2em .4em;width:min(100%,22em)}
body.tb-hide-seen .tb-card.tb-seen{display:none}
"""
MAX_FORM = 1024  # bytes of a seen-mark request's body


class LiveServer:
    """The page over HTTP on ``(host, port)`` (port 0: any free one), refreshing ``view``
    every :data:`POLL_S` on a thread of its own. ``tiles``: the basemap, a folder
    ``Z/X/Y.png`` or an MBTiles file (:mod:`downlink.tiles`); one the page cannot draw
    leaves the map without it and its one-line reason in ``tiles_error``."""

    def __init__(
        self, view: GroundView, address: tuple[str, int], tiles: str | Path | None = None
    ) -> None:
        self.view = view
        self.tiles: TileFolder | MBTiles | None = None
        self.tiles_error: str | None = None
        if tiles:
            try:
                self.tiles = open_tiles(tiles)
            except TileError as exc:
                self.tiles_error = str(exc)
        self._stop = threading.Event()
        self.started = False
        self.httpd = ThreadingHTTPServer(address, self._handler())
        self.httpd.daemon_threads = True
        self._threads = [
            threading.Thread(target=self.httpd.serve_forever, name="web", daemon=True),
            threading.Thread(target=self._poll, name="web-poll", daemon=True),
        ]

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> LiveServer:
        if not self.started:
            self.started = True
            for t in self._threads:
                t.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self.started:
            self.httpd.shutdown()  # waits for serve_forever, so only once it runs
        self.httpd.server_close()
        if self.tiles is not None:
            self.tiles.close()

    def map_html(self) -> str:
        zooms = self.tiles.zooms if self.tiles is not None else None
        note = ("" if self.tiles_error is None else
                f"<p class='tb-note'>no basemap: {escape(self.tiles_error)}</p>")  # fmt: skip
        return f"<div id='map-box'>{self.view.map_svg(zooms)}{note}</div>"

    def _poll(self) -> None:
        while not self._stop.wait(POLL_S):
            self.view.refresh()

    def index(self) -> str:
        v = self.view
        v.refresh()
        with v._lock:
            keys = sorted(v.images, key=lambda k: v.images[k].first_t, reverse=True)[:PAGE_CARDS]
            seq = v._seq
        cards = "".join(v.card_html(k) or "" for k in keys)
        body = (
            "<h1>TextBoost link — ground station</h1>"
            f"<p class='tb-muted'>output folder <code>{escape(str(v.out))}</code> · "
            "<span id='conn'>page: connecting…</span></p>"
            f"<h2>Link</h2>{v.link_html()}"
            f"<h2>Capture positions</h2>{self.map_html()}"
            "<h2>Images (newest first)</h2><div class='tb-tools'>"
            "<input type='search' id='q' placeholder='search: plate, word or file name' "
            "aria-label='search the carried words and file names'> <span id='found'></span>"
            "<label><input type='checkbox' id='hide-seen'> hide photos marked seen</label>"
            f"</div><div class='tb-cards' id='cards'>{cards}</div>"
            f"<script>document.body.dataset.seq = '{seq}';{_SCRIPT}</script>"
        )
        return page("TextBoost ground station", body, _CSS)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet: the service logs events
                pass

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                path = unquote(url.path)
                html = "text/html; charset=utf-8"
                if path == "/":
                    self._send(200, server.index().encode(), html)
                elif path == "/events":
                    since = parse_qs(url.query).get("since", [""])[0]
                    self._events(int(since) if since.isdigit() else None)
                elif path == "/link":
                    self._send(200, server.view.link_html().encode(), html)
                elif path == "/map":
                    self._send(200, server.map_html().encode(), html)
                elif path == "/search":
                    query = parse_qs(url.query).get("q", [""])[0]
                    keys = json.dumps(server.view.search(query)).encode()
                    self._send(200, keys, "application/json")
                elif path.startswith("/card/"):
                    card = server.view.card_html(path[6:])
                    if card is None:
                        self._send(404, b"no such image", "text/plain")
                    else:
                        self._send(200, card.encode(), html)
                elif path.startswith("/files/"):
                    self._file(server.view.out, path[7:].split("/"), {"partial"})
                elif path.startswith("/tiles/") and server.tiles is not None:
                    where = tile_address(path[7:])
                    tile = server.tiles.get(*where) if where is not None else None
                    if tile is None:
                        self._send(404, b"no such tile", "text/plain")
                    else:
                        self._send(200, *tile)
                else:
                    self._send(404, b"not found", "text/plain")

            def do_POST(self) -> None:
                """``/seen`` with ``card=KEY&seen=1|0`` (a form): the coordinator's mark."""
                try:
                    n = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    n = -1
                if urlsplit(self.path).path != "/seen":
                    self._send(404, b"not found", "text/plain")
                elif not 0 <= n <= MAX_FORM:
                    self._send(413, b"expected a form of at most 1024 bytes", "text/plain")
                else:
                    form = parse_qs(self.rfile.read(n).decode("utf-8", "replace"))
                    card, seen = form.get("card", [""])[0], form.get("seen", [""])[0]
                    if seen not in ("0", "1"):
                        self._send(400, b"seen: expected 0 or 1", "text/plain")
                        return
                    try:
                        found = server.view.mark_seen(card, seen == "1")
                    except sqlite3.Error as exc:  # the state file busy or failing: not marked
                        self._send(503, f"not stored: {exc}".encode(), "text/plain")
                        return
                    if found:
                        self._send(200, b"ok", "text/plain")
                    else:
                        self._send(404, b"no such card", "text/plain")

            def _file(self, root: Path, parts: list[str], dirs: set[str]) -> None:
                """A PNG under ``root`` or a folder in ``dirs``: names checked, no way out."""
                ok = parts and all(_SAFE.match(p) and p not in (".", "..") for p in parts)
                ok = ok and parts[-1].endswith(".png")
                ok = ok and (len(parts) == 1 or (len(parts) == 2 and parts[0] in dirs))
                try:
                    data = (root.joinpath(*parts)).read_bytes() if ok else None
                except OSError:
                    data = None
                if data is None:
                    self._send(404, b"not found", "text/plain")
                else:
                    self._send(200, data, "image/png")

            def _events(self, since: int | None) -> None:
                """SSE: each message is a JSON list of the parts changed after ``since``
                (the change number the page was rendered at)."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                seq = server.view.changes_since(1 << 62)[0] if since is None else since
                quiet = 0.0
                try:
                    while not server._stop.is_set():
                        seq2, parts = server.view.changes_since(seq)
                        if parts:
                            self.wfile.write(f"data: {json.dumps(parts)}\n\n".encode())
                            self.wfile.flush()
                            seq, quiet = seq2, 0.0
                        elif quiet >= 10.0:  # a comment keeps proxies from closing it
                            self.wfile.write(b": keep-alive\n\n")
                            self.wfile.flush()
                            quiet = 0.0
                        server._stop.wait(POLL_S)
                        quiet += POLL_S
                except (BrokenPipeError, ConnectionResetError):
                    return

        return Handler
