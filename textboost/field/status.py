"""``python -m uplink status`` / ``python -m downlink status``: where a field service stands,
read from its own files (the SQLite state, opened read-only, and the tail of its JSONL event
log) — it works whether the service runs or not, and changes nothing.

The vehicle: images waiting, in flight (submitted, no FIN yet) and acknowledged, files in the
drop folder, the encode queue (from the log: what is being encoded, what waits, the last
encodes' times), the last acknowledgement and whether the ground answers. The ground: images
stored, bundles under reassembly, decodes to do, the last delivery and the last frame. Both:
whether the service is running (it holds its configured addresses).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Literal

from textboost.field.config import FieldConfig

__all__ = ["field_status", "format_status"]

TAIL_BYTES = 256 << 10  # the end of the event log read for the last events


def _ro(path: Path) -> sqlite3.Connection | None:
    if not path.is_file():
        return None
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)


def _tail(path: Path) -> list[dict[str, Any]]:
    """The last whole lines of an event log (a torn or foreign line is skipped)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - TAIL_BYTES))
            lines = f.read().split(b"\n")[1:]
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out


def _ago(t: float | None, now: float) -> str | None:
    return None if t is None else f"{max(0.0, now - t):.0f} s ago"


def _last(events: list[dict[str, Any]], kinds: tuple[str, ...]) -> dict[str, Any] | None:
    return next((e for e in reversed(events) if e.get("event") in kinds), None)


def field_status(
    node: Literal["uplink", "downlink"], config: FieldConfig, now: float | None = None
) -> dict[str, Any]:
    """The figures :func:`format_status` prints, as a dict (``--json``)."""
    from textboost.field.serve import addresses_in_use, fixed_addresses

    now = time.time() if now is None else now
    held = addresses_in_use(node, config)
    checked = [f"{k} {a}" for k, a, _ in fixed_addresses(node, config)]
    # running: True (holds its addresses), False (they are free), None (none to check)
    running = True if held else (False if checked else None)
    out: dict[str, Any] = {"node": node, "running": running, "holds": held,
                           "checked": checked}  # fmt: skip
    if node == "uplink":
        up = config.uplink
        assert up is not None
        out.update(_uplink(up.state_db, up.drop_dir, _tail(up.event_log), now))
    else:
        dn = config.downlink
        assert dn is not None
        out.update(_downlink(dn.state_db, _tail(dn.event_log), now))
    return out


def _uplink(db_path: Path, drop: Path, events: list[dict[str, Any]], now: float) -> dict:
    out: dict[str, Any] = {"state": str(db_path)}
    db = _ro(db_path)
    if db is None:
        out["state"] += " (not created yet: the service never ran)"
    else:
        with db:
            waiting, flight, acked = db.execute(
                "SELECT SUM(acked_t IS NULL AND submitted_t IS NULL), "
                "SUM(acked_t IS NULL AND submitted_t IS NOT NULL), COUNT(acked_t) FROM images"
            ).fetchone()
            last = db.execute(
                "SELECT image_id, acked_t FROM images WHERE acked_t IS NOT NULL "
                "ORDER BY acked_t DESC LIMIT 1"
            ).fetchone()
        db.close()
        out.update(waiting=waiting or 0, in_flight=flight or 0, acknowledged=acked or 0)
        out["last_ack"] = None if last is None else {"image": last[0], "t": last[1]}
    try:
        out["drop_folder_files"] = sum(
            1 for p in drop.iterdir() if p.is_file() and not p.name.endswith(".tmp")
        )
    except OSError:
        out["drop_folder_files"] = None
    out["encoder"] = _encoder(events, now)
    fail = _last(events, ("failed",))
    ack = _last(events, ("acked",))
    if fail is not None and (ack is None or fail["t"] > ack["t"]):
        out["ground"] = f"not answering: {fail.get('reason')} ({_ago(fail['t'], now)})"
    elif ack is not None:
        out["ground"] = f"answering: last FIN {_ago(ack['t'], now)}"
    else:
        out["ground"] = "no FIN yet"
    return out


def _encoder(events: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """The encode queue since the service's last start, from its log: files handed to the
    encoder and not yet encoded or rejected (the first is being encoded, the rest wait),
    and the last encodes' times."""
    since = max((i for i, e in enumerate(events) if e.get("event") == "restart"), default=-1)
    queue: dict[str, float] = {}
    done: list[dict[str, Any]] = []
    for e in events[since + 1 :]:
        kind, name = e.get("event"), str(e.get("name") or e.get("image"))
        if kind == "encoding":
            queue[name] = float(e.get("t", now))
        elif kind == "encoded":
            queue.pop(name, None)
            if isinstance(e.get("encode_s"), int | float):
                done.append(e)
        elif kind == "rejected":
            queue.pop(name, None)
    recent = [float(e["encode_s"]) for e in done[-10:]]
    return {
        "queue": list(queue),
        "since_t": next(iter(queue.values()), None),  # the head: handed over then
        "last": None if not done else {"name": done[-1].get("name"), "encode_s":
                                       done[-1]["encode_s"], "waited_s": done[-1].get("waited_s")},
        "mean_encode_s": round(sum(recent) / len(recent), 2) if recent else None,
        "mean_of": len(recent),
    }


def _downlink(db_path: Path, events: list[dict[str, Any]], now: float) -> dict:
    out: dict[str, Any] = {"state": str(db_path)}
    db = _ro(db_path)
    if db is None:
        out["state"] += " (not created yet: the service never ran)"
    else:
        with db:
            images, undecoded = db.execute(
                "SELECT COUNT(*), COUNT(*) - COUNT(decoded_t) FROM images"
            ).fetchone()
            flight = db.execute(
                "SELECT COUNT(*) FROM (SELECT DISTINCT epoch, bundle FROM frames)"
            ).fetchone()[0]
            last = db.execute(
                "SELECT name, delivered_t FROM images ORDER BY delivered_t DESC LIMIT 1"
            ).fetchone()
        db.close()
        out.update(images_stored=images, under_reassembly=flight, decodes_to_do=undecoded)
        out["last_delivery"] = None if last is None else {"image": last[0], "t": last[1]}
    frame = _last(events, ("text", "group", "delivered", "duplicate", "frame_dropped"))
    out["vehicle"] = (f"last frame {_ago(frame['t'], now)}" if frame is not None
                      else "no frame logged yet")  # fmt: skip
    return out


def _encoder_line(enc: dict[str, Any], running: bool | None, now: float) -> str:
    if running is False:
        text = "not running (files left in the drop folder are encoded at the next start)"
    elif not enc["queue"]:
        text = "idle"
    else:
        head, rest = enc["queue"][0], len(enc["queue"]) - 1
        text = f"{len(enc['queue'])} in the queue: {head} (handed over {_ago(enc['since_t'], now)})"
        text += f", {rest} waiting" if rest else ""
    last = enc["last"]
    if last is not None:
        text += (f"; last encode {last['encode_s']} s ({last['name']}, waited "
                 f"{last['waited_s']} s), mean {enc['mean_encode_s']} s over {enc['mean_of']}")
    return text


def format_status(st: dict[str, Any], now: float | None = None) -> str:
    """The status as lines ``key: value`` for a person."""
    now = time.time() if now is None else now
    lines = []
    if st["holds"]:
        lines.append(f"service: running (holds {', '.join(st['holds'])})")
    elif st["checked"]:
        lines.append(f"service: not running ({', '.join(st['checked'])} free)")
    else:
        lines.append("service: unknown (no fixed address to check: see the event log's last "
                     "lines)")
    lines.append(f"state: {st['state']}")
    if st["node"] == "uplink":
        if "waiting" in st:
            lines.append(f"queue: {st['waiting']} waiting, {st['in_flight']} in flight, "
                         f"{st['acknowledged']} acknowledged")  # fmt: skip
            last = st.get("last_ack")
            lines.append("last acknowledgement: " + (
                "none yet" if last is None else f"{last['image']} {_ago(last['t'], now)}"))
        lines.append(f"drop folder: {st['drop_folder_files']} file(s) not taken yet")
        lines.append("encoder: " + _encoder_line(st["encoder"], st["running"], now))
        lines.append(f"ground: {st['ground']}")
    else:
        if "images_stored" in st:
            lines.append(f"images: {st['images_stored']} stored, {st['under_reassembly']} "
                         f"under reassembly, {st['decodes_to_do']} to decode")  # fmt: skip
            last = st.get("last_delivery")
            lines.append("last delivery: " + (
                "none yet" if last is None else f"{last['image']} {_ago(last['t'], now)}"))
        lines.append(f"vehicle: {st['vehicle']}")
    return "\n".join(lines)
