"""Hand-off to the tools a rescue team already runs: GeoJSON and KML of what was delivered,
and Cursor-on-Target (CoT) events for a TAK server (ATAK, WinTAK, WebTAK).

Input is the receiver's output folder (the one layout of :mod:`downlink.store`, written by
``downlink receive`` and ``downlink serve`` alike): one ``NAME.json`` per delivered image,
holding its capture metadata and words, and ``NAME.png`` once it was decoded. An image with
no position is listed nowhere: every format here is a map.

CoT follows the TAK conventions: ``<event version="2.0">`` with a stable ``uid`` per image
(so a refined image replaces its marker), ``type`` ``b-i-x-i`` (an image, as ATAK's
quick-pic markers) for the photo and ``b-m-p-s-m`` (a spot-map marker) for each string read,
``how`` ``m-g`` (machine, GNSS), ``time``/``start`` = now, ``stale`` = now + ``stale_s``,
``point`` with unknown errors as ``9999999.0``, and ``detail`` with ``contact`` callsign,
``remarks`` and a ``link`` to the decoded picture. The XML is written with the standard
library (pytak would add an asyncio framework for what is one ``sendto``); events go over
UDP (unicast, or multicast: TAK's SA group is 239.2.3.1:6969), a TCP stream to a TAK
server's plain CoT input (8087 by default on TAK Server), or that stream inside TLS with a
client certificate (its streaming input, 8089 by default).

Words and capture fields come from the air, so any character may be in them. XML 1.0 cannot
carry the C0 controls but tab, newline and carriage return, U+FFFE/U+FFFF or lone surrogates
(not even as character references): every text and attribute of a KML or CoT document, and
every string of the GeoJSON, has those replaced by U+FFFD (:func:`xml_safe`), so one hostile
word never makes an image's TAK event, or the whole KML export, unparseable.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import socket
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "Delivered",
    "cot_events",
    "from_record",
    "load_delivered",
    "parse_cot_url",
    "send_cot",
    "tls_context",
    "to_geojson",
    "to_kml",
    "xml_safe",
]

UNKNOWN_ERROR = "9999999.0"  # CoT's "not known" for ce/le and hae
KML_NS = "http://www.opengis.net/kml/2.2"
# what XML 1.0 cannot carry (its Char production's complement), surrogates included
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """``text`` with every character XML 1.0 cannot carry replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def _safe_tree(root: ET.Element) -> ET.Element:
    """Every text, tail and attribute of ``root``'s tree through :func:`xml_safe`."""
    for el in root.iter():
        if el.text:
            el.text = xml_safe(el.text)
        if el.tail:
            el.tail = xml_safe(el.tail)
        for k, v in el.attrib.items():
            el.attrib[k] = xml_safe(v)
    return root


def _safe_json(value: Any) -> Any:
    """Every string in a JSON value through :func:`xml_safe` (the same words as in KML)."""
    if isinstance(value, str):
        return xml_safe(value)
    if isinstance(value, dict):
        return {k: _safe_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_safe_json(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Delivered:
    """One image as the ground knows it: where and when it was taken, what it says."""

    bundle_id: int
    capture: dict[str, Any]  # CaptureMeta.to_json(): time, lat, lon, alt_m, heading_deg, camera
    strings: list[str] = field(default_factory=list)
    image: Path | None = None  # the decoded PNG (None: text only so far)
    complete: bool = False
    source: Path | None = None  # the bundle's JSON file
    name: str | None = None  # the marker's stable name (default: the bundle id)

    @property
    def located(self) -> bool:
        return "lat" in self.capture and "lon" in self.capture

    @property
    def title(self) -> str:
        """The photo as people name it: its source file's name when the sender carried it
        (``capture.name``), and its key (unique across restarts): ``eu5.jpg e7_b0``."""
        key = self.name or f"b{self.bundle_id}"
        name = self.capture.get("name")
        return f"{name} {key}" if name else f"image {key}"

    @property
    def uid(self) -> str:
        """Stable while the image refines, so TAK replaces the marker instead of adding one."""
        return f"textboost-{self.name or f'{self.bundle_id:05d}'}"


def load_delivered(out_dir: str | Path) -> list[Delivered]:
    """The images in a receiver's output folder: ``NAME.json`` (NAME: 16 hex digits of the
    `.tbx`'s SHA-256), in the order they came (sender epoch, bundle id); other files are not
    the receiver's and are left alone.

    Raises:
        ValueError: a receiver's JSON that does not parse or lacks its keys, naming it.
    """
    out: list[Delivered] = []
    for path in sorted(Path(out_dir).glob("*.json")):
        if not _IMAGE_NAME.match(path.name):
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            out.append(from_record(doc, path.parent))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError,
                ValueError) as e:  # fmt: skip
            raise ValueError(f"{path}: not a receiver's image JSON ({e})") from None
    return sorted(out, key=lambda d: tuple(map(int, str(d.name)[1:].split("_b"))))  # eE_bB


_IMAGE_NAME = re.compile(r"^[0-9a-f]{16}\.json$")


def _words(doc: dict[str, Any]) -> list[str]:
    return [w["text"] for w in doc.get("words") or [] if isinstance(w, dict) and "text" in w]


def from_record(doc: dict[str, Any], folder: Path, png: bool | None = None) -> Delivered:
    """An image of ``downlink serve``: its ``NAME.json`` record (or the text section's
    partial record, without ``image``), named ``eEPOCH_bBUNDLE`` like its live-page card.
    ``png``: whether the picture is there (None: look for ``NAME.png``)."""
    name = doc.get("image")
    picture = folder / f"{name}.png" if name else None
    if picture is not None and not (picture.is_file() if png is None else png):
        picture = None
    return Delivered(
        bundle_id=int(doc["bundle"]),
        capture=doc.get("capture") or {},
        strings=_words(doc),
        image=picture,
        complete=name is not None,
        source=folder / f"{name}.json" if name else None,
        name=f"e{int(doc['epoch'])}_b{int(doc['bundle'])}",
    )


def _link(d: Delivered, base_url: str | None, from_dir: Path | None = None) -> str | None:
    """The picture's link: under ``base_url`` (the live page serves ``/files/NAME.png``), else
    relative to ``from_dir`` (where the export is written), else the bare file name."""
    if d.image is None:
        return None
    if base_url:
        return f"{base_url.rstrip('/')}/{d.image.name}"
    if from_dir is not None:
        return Path(os.path.relpath(d.image.resolve(), Path(from_dir).resolve())).as_posix()
    return d.image.name


def to_geojson(
    images: Iterable[Delivered], base_url: str | None = None, from_dir: Path | None = None
) -> dict[str, Any]:
    """A FeatureCollection of Points (RFC 7946: lon, lat[, alt]) with the capture time, the
    strings read and a link to the decoded picture (under ``base_url``, else relative to
    ``from_dir``, the folder the export is written to)."""
    features = []
    for d in images:
        if not d.located:
            continue
        c = d.capture
        coords = [c["lon"], c["lat"]] + ([c["alt_m"]] if "alt_m" in c else [])
        props: dict[str, Any] = {
            "name": c.get("name"),
            "title": d.title,
            "bundle_id": d.bundle_id,
            "time": c.get("time"),
            "strings": d.strings,
            "text": " | ".join(d.strings),
            "image": _link(d, base_url, from_dir),
            "complete": d.complete,
        }
        for key in ("heading_deg", "camera"):
            if key in c:
                props[key] = c[key]
        features.append(
            {
                "type": "Feature",
                "id": d.uid,
                "geometry": {"type": "Point", "coordinates": coords},
                "properties": props,
            }
        )
    return _safe_json({"type": "FeatureCollection", "features": features})


def to_kml(
    images: Iterable[Delivered], base_url: str | None = None, from_dir: Path | None = None
) -> str:
    """A KML 2.2 document: a Placemark per located image, with its time stamp, the strings
    and the picture in the balloon."""
    ET.register_namespace("", KML_NS)
    root = ET.Element(f"{{{KML_NS}}}kml")
    doc = ET.SubElement(root, f"{{{KML_NS}}}Document")
    ET.SubElement(doc, f"{{{KML_NS}}}name").text = "TextBoost link: delivered images"
    for d in images:
        if not d.located:
            continue
        c = d.capture
        pm = ET.SubElement(doc, f"{{{KML_NS}}}Placemark", id=d.uid)
        ET.SubElement(pm, f"{{{KML_NS}}}name").text = (
            " | ".join(d.strings) if d.strings else d.title
        )
        link = _link(d, base_url, from_dir)
        lines = [d.title] + [f"text: {s}" for s in d.strings]
        html = "<br/>".join(escape(x) for x in lines)
        if link:
            html += f'<br/><img src="{escape(link)}" width="320"/>'
        ET.SubElement(pm, f"{{{KML_NS}}}description").text = html
        if c.get("time"):
            ts = ET.SubElement(pm, f"{{{KML_NS}}}TimeStamp")
            ET.SubElement(ts, f"{{{KML_NS}}}when").text = c["time"]
        point = ET.SubElement(pm, f"{{{KML_NS}}}Point")
        if "alt_m" in c:
            ET.SubElement(point, f"{{{KML_NS}}}altitudeMode").text = "absolute"
        coords = [c["lon"], c["lat"], c.get("alt_m", 0)]
        ET.SubElement(point, f"{{{KML_NS}}}coordinates").text = ",".join(map(str, coords))
    return ET.tostring(_safe_tree(root), encoding="unicode", xml_declaration=True)


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cot_events(
    d: Delivered,
    now: datetime | None = None,
    stale_s: float = 3600.0,
    base_url: str | None = None,
    callsign: str = "TEXTBOOST",
) -> list[bytes]:
    """The CoT events of one located image: the photo, then one per string read (empty
    for an image without a position). Each is one UTF-8 XML document."""
    if not d.located:
        return []
    now = now or datetime.now(timezone.utc)
    c = d.capture
    link = _link(d, base_url)
    when = f"taken {c['time']}" if c.get("time") else "capture time unknown"
    said = f"; text: {' | '.join(d.strings)}" if d.strings else ""
    events = [
        _event(d.uid, "b-i-x-i", c, now, stale_s, f"{callsign} {d.title}",
               f"TextBoost {d.title}, {when}{said}", link)
    ]  # fmt: skip
    for i, s in enumerate(d.strings):
        events.append(
            _event(f"{d.uid}-text-{i}", "b-m-p-s-m", c, now, stale_s, s,
                   f"read in {d.title} ({when}): {s}", link, parent=d.uid)
        )  # fmt: skip
    return events


def _event(
    uid: str,
    kind: str,
    c: dict[str, Any],
    now: datetime,
    stale_s: float,
    callsign: str,
    remarks: str,
    link: str | None,
    parent: str | None = None,
) -> bytes:
    ev = ET.Element(
        "event",
        version="2.0",
        uid=uid,
        type=kind,
        how="m-g",
        time=_iso(now),
        start=_iso(now),
        stale=_iso(now + timedelta(seconds=stale_s)),
    )
    ET.SubElement(
        ev,
        "point",
        lat=f"{c['lat']:.7f}",
        lon=f"{c['lon']:.7f}",
        hae=str(c["alt_m"]) if "alt_m" in c else UNKNOWN_ERROR,
        ce=UNKNOWN_ERROR,
        le=UNKNOWN_ERROR,
    )
    detail = ET.SubElement(ev, "detail")
    ET.SubElement(detail, "contact", callsign=callsign)
    ET.SubElement(detail, "remarks").text = remarks
    if parent is not None:
        ET.SubElement(detail, "link", uid=parent, type="b-i-x-i", relation="p-p")
    if link is not None:
        ET.SubElement(detail, "link", url=link, relation="r-u", mime="image/png",
                      remarks="decoded photo")  # fmt: skip
    if "heading_deg" in c:
        ET.SubElement(detail, "track", course=str(c["heading_deg"]), speed="0.0")
    return ET.tostring(_safe_tree(ev), encoding="utf-8", xml_declaration=True)


TLS_KEYS = ("cert", "key", "ca")  # tls:// query: client certificate, its key, the server's CA


def parse_cot_url(url: str) -> tuple[str, str, int]:
    """``udp://HOST:PORT``, ``tcp://HOST:PORT`` or ``tls://HOST:PORT?cert=C&key=K&ca=A``
    → (scheme, host, port); for ``tls`` the files are read now (:func:`tls_context`).

    Raises:
        ValueError: naming the URL (or the file) and what was expected.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # e.g. an unclosed "[": the message below names the URL
        parts, port = urlsplit(""), None
    if parts.scheme not in ("udp", "tcp", "tls") or not parts.hostname or port is None:
        raise ValueError(
            f"CoT destination {url!r}: expected udp://HOST:PORT, tcp://HOST:PORT or "
            "tls://HOST:PORT?cert=CLIENT.pem&key=CLIENT.key&ca=CA.pem (TAK's SA multicast is "
            "udp://239.2.3.1:6969, TAK Server's inputs tcp://HOST:8087 and tls://HOST:8089)"
        )
    if parts.scheme == "tls":
        tls_context(url)
    elif parts.query:
        raise ValueError(f"CoT destination {url!r}: options (?{parts.query}) are for tls:// only")
    return parts.scheme, parts.hostname, port


def tls_context(url: str) -> ssl.SSLContext:
    """The TLS client context of a ``tls://`` destination: the server checked against
    ``ca`` (default: the system's CAs), this ground presenting ``cert`` and ``key`` (PEM; a
    TAK Server's streaming input asks for a client certificate: ``openssl pkcs12 -in
    ground.p12 -nodes -out ground.pem`` gives both from the .p12 its admin issues).

    Raises:
        ValueError: an unknown option, or a file that is missing or not what it should be."""
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    unknown = sorted(set(query) - set(TLS_KEYS))
    if unknown:
        raise ValueError(f"CoT destination {url!r}: unknown option {unknown[0]!r} (expected "
                         f"{', '.join(TLS_KEYS)})")  # fmt: skip
    opt = {k: v[-1] for k, v in query.items()}
    try:
        ctx = ssl.create_default_context(cafile=opt.get("ca") or None)
        if opt.get("cert"):
            ctx.load_cert_chain(opt["cert"], opt.get("key") or None)
    except (OSError, ssl.SSLError) as exc:
        files = ", ".join(f"{k}={opt[k]}" for k in TLS_KEYS if opt.get(k))
        raise ValueError(f"CoT destination {url!r}: {files or 'system CAs'}: "
                         f"{' '.join(str(exc).split())}") from None  # fmt: skip
    return ctx


def send_cot(events: Iterable[bytes], url: str, timeout_s: float = 5.0, ttl: int = 1) -> int:
    """Send events to ``url`` (:func:`parse_cot_url`): one datagram each over UDP (a
    multicast group gets ``ttl`` hops), or one TCP stream of concatenated documents (inside
    TLS for ``tls://``). Returns the number sent."""
    scheme, host, port = parse_cot_url(url)
    events = list(events)
    if scheme == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            if _is_multicast(host):
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
            for ev in events:
                s.sendto(ev, (host, port))
    elif scheme == "tcp":
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            for ev in events:
                s.sendall(ev)
    else:
        with (socket.create_connection((host, port), timeout=timeout_s) as raw,
              tls_context(url).wrap_socket(raw, server_hostname=host) as s):  # fmt: skip
            for ev in events:
                s.sendall(ev)
            # close_notify, reading what the server sent meanwhile (TLS 1.3 session tickets):
            # a close with unread data is a reset, which can discard the last events unread
            with contextlib.suppress(OSError):
                s.unwrap()
    return len(events)


def _is_multicast(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_multicast
    except ValueError:  # a host name
        return False
