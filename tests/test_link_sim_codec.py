"""The simulator with the real codec: what the ground decodes is what the codec makes of
the bytes that arrived, complete or a prefix cut by the end of a contact."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from link_sim.codec_service import CodecService, psnr_db
from link_sim.mission import Mission
from link_sim.scenario import parse_scenario
from tests.helpers import ROOT
from textboost.bitstream.container import Container
from textboost.codec.image import load_image
from textboost.codec.rate import FixedBpp

RESCUE = yaml.safe_load((ROOT / "scenarios/rescue.yaml").read_text())
IMAGE = ROOT / "link_sim/data/kodak/kodim03.png"


@pytest.fixture(scope="module")
def codec(tmp_path_factory) -> CodecService:
    return CodecService(tmp_path_factory.mktemp("cache"))


def _scenario(window_end_s: float | None):
    raw = copy.deepcopy(RESCUE)
    fwd = {"rate_bps": 9600, "delay_s": 0.01, "mtu_bytes": 256}
    if window_end_s is not None:
        fwd["contacts"] = {"kind": "windows", "windows": [[0, window_end_s]]}
    raw["link"] = {"forward": fwd, "reverse": {"rate_bps": 9600, "delay_s": 0.01,
                                               "mtu_bytes": 256}}
    raw["images"] = {"set": "kodak", "files": [IMAGE.name],
                     "capture": {"start_s": 0.0, "interval_s": 100.0, "count": 1}}
    raw["duration_s"] = 60
    return parse_scenario(raw, "test")


def test_complete_and_partial_delivery_decode_as_the_codec_does(codec):
    full = Mission(_scenario(None), codec).run().records[0]
    assert full.delivered_s is not None and full.decoded_s is not None
    data = codec.encode(IMAGE, FixedBpp(RESCUE["rate"]["bpp"]))
    original = load_image(IMAGE)
    assert full.bundle_bytes == len(data)
    assert full.psnr_db == pytest.approx(psnr_db(original, codec.codec.decode(data)))
    assert Path(full.decoded_image).is_file()

    # The pass ends after header, z and part of the y groups: the ground decodes the prefix.
    n_groups = len(Container.parse(data).groups)
    cut = Mission(_scenario(full.first_byte_s + 0.8 * (full.delivered_s - full.first_byte_s)),
                  codec).run().records[0]
    assert cut.delivered_s is None
    k = Container.groups_in(cut.decoded_sections)
    assert 0 <= k < n_groups
    prefix = Container.parse(data).truncated(k).to_bytes()
    expected = psnr_db(original, codec.codec.decode(prefix))
    assert cut.psnr_db == pytest.approx(expected)
    assert cut.psnr_db < full.psnr_db
    assert "partial" in cut.decode_note
    assert np.isfinite(cut.psnr_db)


def test_text_path_with_the_real_codec_scores_the_decoded_image(codec):
    """kodak_text with ground truth: the words the ground read are the stream's, they land
    before the image, and DET/E2E are the ICDAR matcher's on the decoded image (spotted once:
    a second mission is served from the cache)."""
    from textboost.scenetext.gt import read_gt
    from textboost.scenetext.match import match_image

    image = ROOT / "link_sim/data/kodak_text/kodim03_text.png"
    raw = copy.deepcopy(RESCUE)
    raw["text_path"] = True
    raw["link"] = {"forward": {"rate_bps": 2400, "delay_s": 0.01, "mtu_bytes": 256},
                   "reverse": {"rate_bps": 2400, "delay_s": 0.01, "mtu_bytes": 256}}
    raw["images"] = {"set": "kodak_text", "files": [image.name],
                     "capture": {"start_s": 0.0, "interval_s": 100.0, "count": 1}}
    raw["duration_s"] = 60
    res = Mission(parse_scenario(raw, "test"), codec).run()
    rec = res.records[0]
    data = codec.encode(image, FixedBpp(RESCUE["rate"]["bpp"]), text=True)
    words = codec.codec.words(data)
    assert words and rec.text_bytes == len(Container.parse(data).text) > 0
    assert rec.text_strings == [w.text for w in words]
    # header, words and z may share the first frame; the y groups follow
    assert rec.time_to_text_s <= rec.time_to_first_image_s < rec.time_to_image_s
    gt = read_gt(image)
    m = match_image(gt.words, codec.reads(Path(rec.decoded_image)))
    assert rec.text_det == (m.det.tp, m.det.n_gt, m.det.n_det)
    assert rec.text_e2e == (m.e2e.tp, m.e2e.n_gt, m.e2e.n_det)
    assert rec.text_det[1] == len(gt.care_words) > 0 and rec.text_e2e_original is not None
    carried = match_image(gt.words, words)  # what the operator reads from the text section
    assert rec.text_e2e_words == (carried.e2e.tp, carried.e2e.n_gt, carried.e2e.n_det)
    spots = codec.spots
    again = Mission(parse_scenario(raw, "test"), codec).run().records[0]
    assert again.text_e2e == rec.text_e2e and codec.spots == spots  # cached reads

    from link_sim.report import report_dict

    rep = report_dict([res], "test")
    row = rep["images"][0]
    assert row["det_f1"] is not None and row["e2e_f1"] is not None
    assert rep["summary"]["text_det_f1"]["mean"] == pytest.approx(row["det_f1"], abs=1e-4)
    assert any("ICDAR 2015" in n for n in rep["notes"])

    plain = codec.encode(image, FixedBpp(RESCUE["rate"]["bpp"]), text=False)
    assert Container.parse(plain).text == b"" and plain != data


def test_fusion_weights_beside_the_model_are_used_and_keyed(codec, tmp_path):
    """With a fusion block shipped beside the model, the ground fuses (the decoded pixels
    are the codec's ``decode`` with fusion) and the decode cache never serves the pixels
    decoded without it."""
    import shutil

    import torch

    from textboost.codec.weights import DEFAULT_MODEL
    from textboost.fusion.model import FusionBlock
    from textboost.fusion.runtime import save_fusion

    model = tmp_path / "m.safetensors"
    shutil.copy(DEFAULT_MODEL, model)
    plain = CodecService(codec.cache_dir, model=model)
    assert plain.fusion_tag == "fusion=none"
    block = FusionBlock()
    torch.manual_seed(0)
    torch.nn.init.normal_(block.project.weight, std=0.05)  # not the identity
    save_fusion(block, tmp_path / "m.fusion.safetensors", plain.model_id)
    fused = CodecService(codec.cache_dir, model=model)
    assert fused.fusion_tag.startswith("fusion=") and fused.fusion_tag != "fusion=none"
    data = codec.encode(IMAGE, FixedBpp(RESCUE["rate"]["bpp"]))
    assert fused.decoder.path_of(data) != plain.decoder.path_of(data)
    rec = Mission(_scenario(None), fused).run().records[0]
    expected = fused.codec.decode(data)
    assert fused.codec.fusion is not None
    assert not np.array_equal(expected, fused.codec.decode(data, fusion=False))
    assert rec.psnr_db == pytest.approx(psnr_db(load_image(IMAGE), expected))


def test_send_name_false_leaves_the_file_name_out_as_the_field_does(codec):
    """``send_name: false`` (the field's ``uplink.send_name``): the capture record carries
    no file name (the budget spends those bytes on the picture), and the mission sends
    that stream."""
    raw = _scenario(None).model_dump(mode="json", exclude_none=True)
    raw["send_name"] = False
    rec = Mission(parse_scenario(raw, "test"), codec).run().records[0]
    policy = FixedBpp(RESCUE["rate"]["bpp"])
    named, plain = codec.encode(IMAGE, policy), codec.encode(IMAGE, policy, name=False)
    assert Container.parse(named).header.meta.name == IMAGE.name
    meta = Container.parse(plain).header.meta
    assert meta is None or meta.name is None
    assert rec.delivered_s is not None and rec.bundle_bytes == len(plain) and plain != named
