"""Whole missions through the real uplink/downlink nodes and protocol, with synthetic
`.tbx` payloads (the link is under test here; the codec path has its own test)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from link_sim.codec_service import CodecService
from link_sim.mission import Mission
from link_sim.report import TEXT_PATH_NOTE, report_dict, write_json
from link_sim.scenario import parse_scenario

RESCUE = yaml.safe_load(Path("scenarios/rescue.yaml").read_text())


def _scenario(**changes):
    raw = copy.deepcopy(RESCUE)
    for dotted, value in changes.items():
        node = raw
        *path, last = dotted.split("__")
        for key in path:
            node = node[key]
        node[last] = value
    return parse_scenario(raw, "test")


@pytest.fixture
def codec(tmp_path) -> CodecService:
    return CodecService(tmp_path / "cache", synthetic=True)


def test_clean_link_throughput_is_rate_times_protocol_efficiency(codec):
    rate = 9600.0
    clean = {"rate_bps": rate, "delay_s": 0.01, "mtu_bytes": 256}
    s = _scenario(
        link__forward=clean, link__reverse=dict(clean), rate={"policy": "bpp", "bpp": 1.0},
        images__capture={"start_s": 0.0, "interval_s": 1000.0, "count": 1},
        protocol__arq="deferred",
    )
    res = Mission(s, codec).run()
    rec = res.records[0]
    assert rec.delivered_s is not None and rec.retransmission_bytes == 0
    first_pass_bytes = rec.payload_bytes + rec.header_bytes  # everything up to the last DATA
    airtime_s = rec.delivered_s - rec.first_byte_s - 0.01
    eof_bytes = 10  # the EOF frame follows the last DATA frame
    assert airtime_s == pytest.approx((first_pass_bytes - eof_bytes) * 8 / rate, rel=1e-9)
    goodput = rec.payload_bytes * 8 / airtime_s
    efficiency = rec.payload_bytes / rec.on_air_bytes
    assert goodput == pytest.approx(rate * efficiency, rel=0.002)
    assert goodput >= 0.95 * rate


def test_arq_delivers_every_image_under_burst_loss(codec):
    lossy = {"rate_bps": 2400, "delay_s": 0.05, "mtu_bytes": 256, "ber": 1e-5,
             "burst": {"p": 0.1, "r": 0.3, "loss_good": 0.02, "loss_bad": 0.9}}
    s = _scenario(link__forward=lossy, link__reverse=dict(lossy), duration_s=3000,
                  protocol__arq="immediate", protocol__max_retries=50)
    res = Mission(s, codec).run()
    assert sum(res.forward.log.lost) > 10  # the channel did lose frames
    assert all(r.delivered_s is not None for r in res.records)
    assert sum(r.retransmission_bytes for r in res.records) > 0
    assert res.downlink.receiver.stats.section_crc_failures == 0

    one_way = _scenario(link__forward=lossy, link__reverse=None, duration_s=3000,
                        protocol__arq="none")
    res1 = Mission(one_way, codec).run()
    assert any(r.delivered_s is None for r in res1.records)  # no ARQ: losses stay lost
    assert res1.reverse is None


def test_same_seed_same_report_other_seed_differs(codec, tmp_path):
    def report(seed: int, run_index: int = 0) -> str:
        s = _scenario(seed=seed)
        res = Mission(s, codec, run_index).run()
        path = tmp_path / f"r{seed}-{run_index}.json"
        write_json(report_dict([res], "test"), path)
        return path.read_text()

    assert report(1) == report(1)
    assert report(1) != report(2)
    assert report(1, 0) != report(1, 1)


def test_text_path_flag_is_reported_unavailable(codec):
    res = Mission(_scenario(text_path=True), codec).run()
    rep = report_dict([res], "test")
    assert rep["text_path"] == "unavailable"
    assert TEXT_PATH_NOTE in rep["notes"]
    assert all(row["text_delivered_s"] is None for row in rep["images"])
    json.dumps(rep)  # serialisable


def test_storage_limit_drops_with_a_reason(codec):
    s = _scenario(sender__storage_bytes=3000, sender__max_in_flight=1,
                  link__forward__rate_bps=50,
                  images__capture={"start_s": 0.0, "interval_s": 5.0, "count": 8})
    res = Mission(s, codec).run()
    dropped = [r for r in res.records if r.dropped]
    assert dropped and all("storage" in r.dropped or "refused" in r.dropped for r in dropped)


def test_contacts_stop_protocol_timers_between_passes(codec):
    """A bundle in flight when the pass ends completes in the next pass instead of failing
    its retries while the link is down."""
    windows = {"kind": "windows", "windows": [[0, 12], [2000, 2100]]}
    fwd = {"rate_bps": 1200, "delay_s": 0.01, "mtu_bytes": 256, "contacts": windows}
    s = _scenario(link__forward=fwd,
                  link__reverse={"rate_bps": 1200, "delay_s": 0.01, "mtu_bytes": 256},
                  images__capture={"start_s": 0.0, "interval_s": 100.0, "count": 1},
                  duration_s=2500, protocol__max_retries=2, protocol__rto_s=3.0)
    res = Mission(s, codec).run()
    rec = res.records[0]
    assert rec.failed is None
    assert rec.delivered_s is not None and 2000 < rec.delivered_s < 2100
