"""``python -m link_sim replay LOG [LOG ...] --scenario FILE``: calibrate the simulator on a
field trial.

It reads the trial's JSONL event logs (the field services write one object per line:
``{"t", "node", "event", "image", "epoch", "bundle", "bytes", ...}``; the uplink's and the
downlink's logs separate or merged), takes each image's capture time (``captured``), the
time its encoded stream was queued (``encoded``; else the scenario's encode latency) and
the bytes that were delivered, and runs the scenario's link
for exactly that arrival sequence: a :class:`~link_sim.mission.Mission` whose camera and
encoder are replaced by the log (real protocol, real nodes, the scenario's channel, run 0's
seeds), with synthetic `.tbx` payloads of the delivered sizes. Per image it prints the
measured and the simulated latency, capture → delivered and capture → text, and a summary
(median and p95 of both, and their ratio measured / simulated).

Times in the log are Unix seconds: on one machine (a rehearsal over loopback) both nodes
share the clock; in the field the ground's and the edge's clocks must agree (NTP, GNSS).
The encode time is taken from the log (captured → encoded), so the comparison is about
the link; the queue in front of the protocol (the scenario's ``sender.max_in_flight``) is
simulated, so set it as the trial ran.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from link_sim.codec_service import CodecService, default_cache_dir
from link_sim.mission import Mission
from link_sim.payloads import synthetic_container
from link_sim.records import ImageTrace
from link_sim.scenario import Scenario, ScenarioError, load_scenario
from textboost.bitstream.container import SectionKind
from textboost.cli import add_version, prog_name

__all__ = ["LogError", "TrialImage", "main", "read_logs", "replay", "summarize"]

_INT_OR_NULL = ("epoch", "bundle", "bytes")


class LogError(ValueError):
    """A malformed event log line; the message names file, line and field."""


@dataclass(slots=True)
class TrialImage:
    """One image of the trial as its logs tell it (Unix seconds; None: not in the log)."""

    image: str
    captured_t: float
    encoded_t: float | None = None
    epoch: int | None = None
    bundle: int | None = None
    bytes: int | None = None
    text_bytes: int | None = None
    text_t: float | None = None
    delivered_t: float | None = None


def _events(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except OSError as exc:
        raise LogError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise LogError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            ev = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LogError(f"{where}: not a JSON object ({exc.msg})") from None
        if not isinstance(ev, dict):
            raise LogError(f"{where}: expected a JSON object, got {type(ev).__name__}")
        t = ev.get("t")
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
            raise LogError(f"{where}: field 't': expected Unix seconds (a number), got {t!r}")
        if ev.get("node") not in ("uplink", "downlink"):
            raise LogError(
                f"{where}: field 'node': expected 'uplink' or 'downlink', got {ev.get('node')!r}"
            )
        if not isinstance(ev.get("event"), str):
            raise LogError(f"{where}: field 'event': expected a name, got {ev.get('event')!r}")
        image = ev.get("image")
        if image is not None and (isinstance(image, bool) or not isinstance(image, str | int)):
            raise LogError(f"{where}: field 'image': expected an id or null, got {image!r}")
        for key in _INT_OR_NULL:
            v = ev.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise LogError(
                    f"{where}: field '{key}': expected an integer >= 0 or null, got {v!r}"
                )
        yield n, ev


def read_logs(paths: list[Path]) -> list[TrialImage]:
    """The trial's images in capture order, joined across the logs: the uplink's events by
    image id, the downlink's by (epoch, bundle) through the uplink's ``submitted`` event
    (or by image id when the downlink names it). Only delivered images are returned.

    Raises:
        LogError: a malformed line (file, line number, field), or no delivered image.
    """
    images: dict[str, TrialImage] = {}
    by_bundle: dict[tuple[int, int], str] = {}
    ground: list[dict[str, Any]] = []
    for path in paths:
        for n, ev in _events(path):
            name, image = ev["event"], ev.get("image")
            image = None if image is None else str(image)
            where = f"{path}:{n}"
            if ev["node"] == "downlink":
                ground.append(ev)
                continue
            if name == "captured":
                if image is None:
                    raise LogError(f"{where}: field 'image': a 'captured' event needs an id")
                images.setdefault(image, TrialImage(image, float(ev["t"])))
            elif name in ("encoded", "submitted") and image is not None and image in images:
                rec = images[image]
                if ev.get("bytes") is not None:
                    rec.bytes = ev["bytes"]
                if name == "encoded":
                    rec.encoded_t = float(ev["t"])
                elif ev.get("epoch") is not None and ev.get("bundle") is not None:
                        rec.epoch, rec.bundle = ev["epoch"], ev["bundle"]
                        by_bundle[(ev["epoch"], ev["bundle"])] = image
    for ev in ground:
        key = (ev.get("epoch"), ev.get("bundle"))
        image = by_bundle.get(key)  # type: ignore[arg-type]
        if image is None and ev.get("image") is not None:
            image = str(ev["image"])
        rec = images.get(image) if image is not None else None
        if rec is None:
            continue
        if ev["event"] == "text" and rec.text_t is None:
            rec.text_t = float(ev["t"])
            if ev.get("bytes") is not None:
                rec.text_bytes = ev["bytes"]
        elif ev["event"] == "delivered" and rec.delivered_t is None:
            rec.delivered_t = float(ev["t"])
            if ev.get("bytes") is not None:
                rec.bytes = ev["bytes"]
    out = sorted(
        (r for r in images.values() if r.delivered_t is not None and r.bytes),
        key=lambda r: (r.captured_t, r.image),
    )
    if not out:
        raise LogError(
            f"{', '.join(map(str, paths))}: no image with 'captured' (uplink) and 'delivered' "
            "(downlink, joined by epoch and bundle of 'submitted') events and a byte count"
        )
    return out


class _ReplayMission(Mission):
    """A mission whose captures and encodes come from the trial's log."""

    def __init__(
        self, scenario: Scenario, codec: CodecService, trial: list[TrialImage]
    ) -> None:
        self.trial = trial
        self.t0 = trial[0].captured_t
        super().__init__(scenario, codec, run_index=0)

    def camera(self) -> Iterator[simpy.Event]:
        env = self.env
        for i, img in enumerate(self.trial):
            yield env.timeout(max(0.0, img.captured_t - self.t0 - env.now))
            self.records.append(ImageTrace(i, img.image, 1, 1, capture_s=env.now))
            env.process(self._encode(i, img))

    def encoder(self) -> Iterator[simpy.Event]:
        """Unused: each capture's encode is its own process (:meth:`_encode`), as logged."""
        return
        yield

    def _encode(self, i: int, img: TrialImage) -> Iterator[simpy.Event]:
        env = self.env
        encode_s = self.scenario.sender.encode_s
        if img.encoded_t is not None:
            encode_s = max(0.0, img.encoded_t - img.captured_t)
        yield env.timeout(encode_s)
        text = bytes(img.text_bytes or 0)
        assert img.bytes is not None
        data = synthetic_container(img.image.encode(), 1, 1, img.bytes, text=text)
        rec = self.records[i]
        rec.encode_done_s, rec.bundle_bytes, rec.text_bytes = env.now, len(data), len(text)
        for drop in self.uplink.store(str(i), data, self.contacts.to_contact(env.now)):
            self.records[int(drop.image_id)].dropped = drop.reason
        self._poke(self.uplink, self._sender_wake)
        self.forward.wake()


def replay(
    scenario: Scenario, trial: list[TrialImage], cache_dir: Path, tail_s: float = 3600.0
) -> list[dict[str, Any]]:
    """Simulate the trial's arrivals on the scenario's link; one row per image."""
    span = trial[-1].captured_t - trial[0].captured_t
    s = scenario.model_copy(update={"duration_s": span + tail_s})
    mission = _ReplayMission(s, CodecService(cache_dir, synthetic=True), trial)
    mission.run()
    rows = []
    for img, rec in zip(trial, mission.records, strict=True):
        sim_text = None
        if len(rec.section_delivered_s) > SectionKind.TEXT:
            t = rec.section_delivered_s[SectionKind.TEXT]
            sim_text = None if t is None else t - rec.capture_s
        rows.append({
            "image": img.image,
            "bytes": img.bytes,
            "measured_delivered_s": img.delivered_t - img.captured_t,  # type: ignore[operator]
            "simulated_delivered_s": (
                None if rec.delivered_s is None else rec.delivered_s - rec.capture_s
            ),
            "measured_text_s": None if img.text_t is None else img.text_t - img.captured_t,
            "simulated_text_s": sim_text,
        })
    return rows


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p95": None}
    a = np.asarray(values, float)
    return {"median": float(np.median(a)), "p95": float(np.percentile(a, 95))}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and p95 of measured and simulated latencies, and measured / simulated."""
    out: dict[str, Any] = {"images": len(rows)}
    for what in ("delivered", "text"):
        pairs = [
            (r[f"measured_{what}_s"], r[f"simulated_{what}_s"])
            for r in rows
            if r[f"measured_{what}_s"] is not None and r[f"simulated_{what}_s"] is not None
        ]
        m = _stats([p[0] for p in pairs])
        s = _stats([p[1] for p in pairs])
        ratio = {
            k: (m[k] / s[k] if m[k] is not None and s[k] else None) for k in ("median", "p95")
        }
        out[what] = {"n": len(pairs), "measured": m, "simulated": s, "ratio": ratio}
    return out


def _fmt(v: float | None, nd: int = 2) -> str:
    return "–" if v is None else f"{v:.{nd}f}"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog_name("link_sim", "link-sim") + " replay",
        description="Simulate a field trial's event log on a scenario's link and compare "
        "measured and simulated latency per image.",
    )
    add_version(p)
    p.add_argument("logs", nargs="+", type=Path, metavar="LOG",
                   help="JSONL event logs of the trial (uplink and downlink, separate or merged)")
    p.add_argument("--scenario", type=Path, required=True, help="scenario YAML file")
    p.add_argument("--tail-s", type=float, default=3600.0,
                   help="simulated seconds after the last capture (default 3600)")
    p.add_argument("--cache", type=Path, default=None, help="cache folder (synthetic payloads)")
    p.add_argument("--json", action="store_true", help="rows and summary as one JSON object")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        if not args.tail_s > 0:
            raise ScenarioError(f"--tail-s {args.tail_s}: expected seconds > 0")
        scenario = load_scenario(args.scenario)
        trial = read_logs(args.logs)
    except (ScenarioError, LogError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = replay(scenario, trial, args.cache or default_cache_dir(), args.tail_s)
    summary = summarize(rows)
    if args.json:
        print(json.dumps({"scenario": scenario.name, "rows": rows, "summary": summary}))
        return 0
    print(f"replay of {len(rows)} delivered images on scenario {scenario.name} "
          "(seconds after capture; measured / simulated)")
    print(f"{'image':<24} {'bytes':>7} {'delivered':>10} {'sim':>8} {'text':>8} {'sim':>8}")
    for r in rows:
        print(f"{r['image'][:24]:<24} {r['bytes']:>7} {_fmt(r['measured_delivered_s']):>10} "
              f"{_fmt(r['simulated_delivered_s']):>8} {_fmt(r['measured_text_s']):>8} "
              f"{_fmt(r['simulated_text_s']):>8}")
    for what in ("delivered", "text"):
        s = summary[what]
        print(f"capture -> {what} ({s['n']} images): median {_fmt(s['measured']['median'])} s "
              f"measured, {_fmt(s['simulated']['median'])} s simulated (ratio "
              f"{_fmt(s['ratio']['median'])}); p95 {_fmt(s['measured']['p95'])} / "
              f"{_fmt(s['simulated']['p95'])} s (ratio {_fmt(s['ratio']['p95'])})")
    return 0
