"""One edge queue: the field service's SQLite queue runs the store-and-forward drop policy of
the node (``uplink.storage_bytes``, ``uplink.drop_policy``, the scenario's ``sender`` model)."""

from __future__ import annotations

import hashlib

import numpy as np

from link_sim.scenario import SenderProfile
from tests.field_harness import tbx, write_config
from textboost.field.config import UplinkSection, load_field_config
from textboost.field.eventlog import read_events
from textboost.settings.queue import EdgeQueue


def test_field_and_scenario_share_the_edge_queue_model():
    assert issubclass(UplinkSection, EdgeQueue) and issubclass(SenderProfile, EdgeQueue)
    for name in EdgeQueue.model_fields:
        assert UplinkSection.model_fields[name].metadata == SenderProfile.model_fields[
            name].metadata == EdgeQueue.model_fields[name].metadata, name  # fmt: skip
    assert SenderProfile.model_fields["storage_bytes"].is_required()  # a scenario states it


def test_a_full_queue_drops_the_oldest_waiting_image_in_the_field_too(tmp_path):
    from uplink.service import UplinkService

    rng = np.random.default_rng(5)
    images = {name: tbx(rng) for name in ("a.jpg", "b.jpg", "c.jpg")}
    storage = sum(map(len, images.values())) - 1  # any two fit, not three
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace(
        "  poll_s:", f"  storage_bytes: {storage}\n  max_in_flight: 1\n  poll_s:"))  # fmt: skip
    cfg = load_field_config(config)
    edge = UplinkService(cfg)
    try:
        for name, data in images.items():  # as _store_encoded: durable, then queued
            sha = hashlib.sha256(data).hexdigest()
            image_id = edge.state.add(name, sha, None, data, sha, 0.01, 0.0)
            edge._queue(image_id, data, 0.0)
        assert [i.image_id for i in edge.node.storage.waiting] == ["b.jpg", "c.jpg"]
        assert [q.image_id for q in edge.state.pending()] == ["b.jpg", "c.jpg"]
    finally:
        edge.close()
    (dropped,) = [e for e in read_events(tmp_path / "uplink.jsonl") if e["event"] == "dropped"]
    assert dropped["image"] == "a.jpg" and dropped["bytes"] == len(images["a.jpg"])
    assert f"storage full ({storage} bytes): dropped oldest for c.jpg" in dropped["reason"]
    edge = UplinkService(cfg)  # a restart queues what is left, under the same policy
    try:
        assert [i.image_id for i in edge.node.storage.waiting] == ["b.jpg", "c.jpg"]
    finally:
        edge.close()
