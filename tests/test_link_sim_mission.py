"""Whole missions through the real uplink/downlink nodes and protocol, with synthetic
`.tbx` payloads (the link is under test here; the codec path has its own test)."""

from __future__ import annotations

import copy
import itertools
import json

import pytest
import yaml

from link_sim.codec_service import SYNTHETIC_WORD, CodecService
from link_sim.mission import Mission
from link_sim.report import SYNTHETIC_TEXT_NOTE, TEXT_OFF_NOTE, report_dict, write_json
from link_sim.scenario import parse_scenario
from tests.helpers import ROOT
from textboost.protocol import Frame, FrameType, LinkConfig, encode_frame

RESCUE = yaml.safe_load((ROOT / "scenarios/rescue.yaml").read_text())


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
    # the EOF follows the last DATA frame (long form: the receiver has not echoed the epoch)
    eof = Frame(type=FrameType.EOF, bundle_id=0, epoch=res.uplink.sender.epoch)
    eof_bytes = len(encode_frame(eof, LinkConfig(), long=True))
    assert airtime_s == pytest.approx((first_pass_bytes - eof_bytes) * 8 / rate, rel=1e-9)
    goodput = rec.payload_bytes * 8 / airtime_s
    efficiency = rec.payload_bytes / rec.on_air_bytes
    assert goodput == pytest.approx(rate * efficiency, rel=0.002)
    assert goodput >= 0.9 * rate  # at most 15 bytes of header and CRC per 256-byte frame


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

    one_way = _scenario(link__forward=lossy, link__reverse=None, link__half_duplex=False,
                        duration_s=3000, protocol__arq="none")
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


def test_text_section_lands_long_before_the_image_on_a_slow_link(codec):
    """1200 bit/s: the header and the words are the first section, so the ground reads the
    words seconds before the first image (z) and long before the complete image."""
    res = Mission(_scenario(text_path=True), codec).run()
    delivered = [r for r in res.records if r.delivered_s is not None]
    assert len(delivered) >= 5
    for r in delivered:
        assert r.text_bytes and r.text_strings == [SYNTHETIC_WORD]
        assert r.time_to_text_s < r.time_to_first_image_s < r.time_to_image_s
        assert r.time_to_image_s - r.time_to_text_s > 10  # kilobytes at 1200 bit/s
    rep = report_dict([res], "test")
    assert rep["text_path"] == "on" and SYNTHETIC_TEXT_NOTE in rep["notes"]
    m = rep["summary"]
    assert m["text_latency_p50_s"]["mean"] < m["first_image_latency_p50_s"]["mean"]
    assert m["first_image_latency_p50_s"]["mean"] < m["image_latency_p50_s"]["mean"]
    assert m["text_e2e_f1"]["mean"] is None  # synthetic: nothing decoded, nothing scored
    row = rep["images"][0]
    assert row["text_strings"] == [SYNTHETIC_WORD] and row["det_f1"] is None
    assert row["text_delivered_s"] == row["header_delivered_s"] is not None
    json.dumps(rep)  # serialisable


def test_text_path_false_carries_no_text(codec):
    res = Mission(_scenario(text_path=False), codec).run()
    sent = [r for r in res.records if r.bundle_bytes is not None]
    assert sent and all(r.text_bytes == 0 for r in sent)
    for r in res.records:
        if r.section_delivered_s and r.section_delivered_s[0] is not None:
            assert r.text_strings == [] and r.time_to_text_s is None
    rep = report_dict([res], "test")
    assert rep["text_path"] == "off" and TEXT_OFF_NOTE in rep["notes"]
    assert all(row["text_delivered_s"] is None for row in rep["images"])
    assert rep["summary"]["words_delivered"]["mean"] == 0


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


def test_adaptive_budget_follows_queue_and_next_contact(codec):
    windows = {"kind": "windows", "windows": [[0, 30], [600, 640]]}
    fwd = {"rate_bps": 2400, "delay_s": 0.01, "mtu_bytes": 256, "contacts": windows}
    s = _scenario(link__forward=fwd, rate={"policy": "adaptive", "min_bytes": 500,
                                           "max_bytes": 20000},
                  images__capture={"start_s": 0.0, "interval_s": 2.0, "count": 3},
                  duration_s=800)
    res = Mission(s, codec).run()
    sizes = [r.bundle_bytes for r in res.records]
    # first photo: the rest of the 30 s pass after encoding (2400/8 B/s × (30 s − encode));
    # the next ones get what is left after the queue, down to the floor
    offer = 2400 / 8 * (30 - s.sender.encode_s)
    assert 0.75 * offer < sizes[0] <= offer
    assert sizes[1] < sizes[0] and sizes[2] <= sizes[1]
    assert sizes[2] == pytest.approx(500, abs=8), sizes  # the floor


def test_fec_recovers_losses_on_a_one_way_link(codec):
    lossy = {"rate_bps": 9600, "delay_s": 0.01, "mtu_bytes": 256,
             "burst": {"p": 0.05, "r": 0.9, "loss_good": 0.0, "loss_bad": 1.0}}
    base = {"link__forward": lossy, "link__reverse": None, "link__half_duplex": False,
            "protocol__arq": "none",
            "rate": {"policy": "bpp", "bpp": 0.2}}
    plain = Mission(_scenario(**base), codec).run()
    fec = Mission(_scenario(**base, protocol__fec_k=8, protocol__fec_m=3), codec).run()
    assert fec.downlink.receiver.stats.fec_recovered > 0
    assert sum(r.fec_bytes for r in fec.records) > 0
    complete = [sum(r.delivered_s is not None for r in m.records) for m in (plain, fec)]
    assert complete[1] > complete[0]


def test_half_duplex_directions_never_overlap(codec):
    lossy = {"rate_bps": 1200, "delay_s": 0.0001, "mtu_bytes": 256, "frame_overhead_s": 0.3,
             "burst": {"p": 0.05, "r": 0.3, "loss_good": 0.0, "loss_bad": 0.8}}
    full = Mission(_scenario(link__forward=lossy, link__reverse=dict(lossy)), codec).run()
    half = Mission(_scenario(link__forward=lossy, link__reverse=dict(lossy),
                             link__half_duplex=True), codec).run()
    spans = sorted(
        (t, t + a) for d in (half.forward, half.reverse)
        for t, a in zip(d.log.start_s, d.log.airtime_s, strict=True)
    )
    assert half.reverse.log.frames > 0
    assert all(b_start >= a_end - 1e-9 for (_, a_end), (b_start, _) in itertools.pairwise(spans))
    lat = [sum(r.latency_s for r in m.records if r.latency_s) for m in (full, half)]
    assert lat[1] >= lat[0]


def test_a_set_without_ground_truth_says_so(codec):
    """The report names the set that has no ground truth instead of showing empty F1s."""
    res = Mission(_scenario(images__set="kodak"), codec).run()
    res.synthetic = False  # as if decoded by the real codec: the note is about the images
    notes = report_dict([res], "test")["notes"]
    assert any("no ground-truth text" in n and "kodak" in n for n in notes)
    res_text = Mission(_scenario(), codec).run()  # kodak_text ships gt_<image>.txt
    res_text.synthetic = False
    assert not any("no ground-truth" in n for n in report_dict([res_text], "test")["notes"])
