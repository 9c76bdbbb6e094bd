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
from textboost.codec.container import Container
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
