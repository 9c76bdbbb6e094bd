"""The vehicle's encode queue in the open (issue 25 item 6): each photo handed to the encoder
is an ``encoding`` event with the photos ahead of it, each encode an ``encoded`` event with
its own time and its wait; ``uplink status`` shows what is being encoded, what waits, and
the last encodes' times; ``serve`` prints them."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

from tests.field_harness import write_config
from textboost.field.config import load_field_config
from textboost.field.eventlog import read_events
from textboost.field.serve import _event_line
from textboost.field.status import field_status, format_status
from uplink.encode import EncodePipeline, FixedRate
from uplink.service import UplinkService


@pytest.mark.slow
def test_encode_queue_and_times_in_the_log_status_and_printed_lines(tmp_path, pipeline, kodim23):
    config = write_config(tmp_path)  # no ground: the photos only queue up
    cfg = load_field_config(config, need="uplink")
    edge = UplinkService(cfg, pipeline=EncodePipeline(FixedRate(0.3), None, lambda: pipeline))
    drop = tmp_path / "drop"
    drop.mkdir(exist_ok=True)
    for i in range(3):  # three photos at once: one is encoded, two wait
        img = np.ascontiguousarray(kodim23[64 * i : 64 * i + 256, 128 : 128 + 384])
        Image.fromarray(img).save(drop / f"p{i}.png.tmp", format="PNG")
        (drop / f"p{i}.png.tmp").rename(drop / f"p{i}.png")
    stop = threading.Event()
    thread = threading.Thread(target=edge.run, args=(stop, 120.0))
    thread.start()
    seen: list[str] = []
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end:
            st = field_status("uplink", cfg)
            line = next(x for x in format_status(st).splitlines() if x.startswith("encoder:"))
            seen.append(line)
            if sum(e["event"] == "encoded" for e in read_events(tmp_path / "uplink.jsonl")) == 3:
                break
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
        edge.close()
    events = list(read_events(tmp_path / "uplink.jsonl"))
    handed = [e for e in events if e["event"] == "encoding"]
    assert [(e["image"], e["queued"]) for e in handed] == [("p0.png", 0), ("p1.png", 1),
                                                           ("p2.png", 2)]  # fmt: skip
    done = [e for e in events if e["event"] == "encoded"]
    assert [e["name"] for e in done] == ["p0.png", "p1.png", "p2.png"]
    assert [e["queued"] for e in done] == [2, 1, 0]
    assert all(e["encode_s"] > 0 for e in done)
    # each waited for the encodes ahead of it (log times are rounded to 10 ms)
    assert done[2]["waited_s"] >= done[0]["encode_s"] + done[1]["encode_s"] - 0.05
    # status while it ran: the head being encoded and the others waiting, then idle with times
    assert any("3 in the queue: p0.png" in x and "2 waiting" in x for x in seen), seen
    assert any(x.startswith("encoder: 1 in the queue: p2.png") for x in seen), seen
    final = format_status(field_status("uplink", cfg))
    assert f"encoder: idle; last encode {done[2]['encode_s']} s (p2.png" in final
    assert "mean" in final and "over 3" in final
    printed = _event_line(done[1])
    assert printed.startswith(f"encoded p1.png {done[1]['bytes']} B in ")  # id = file name here
    assert f"in {done[1]['encode_s']} s (waited {done[1]['waited_s']} s)" in printed
    assert printed.endswith("1 left in the encode queue")
    assert _event_line(handed[2]).endswith("2 ahead in the encode queue")
