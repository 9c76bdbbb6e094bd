"""One image loader (textboost.codec.image.load_image) behind every entry point that reads
an image file: a 16-bit greyscale PNG reads with its true mean (about 127.5 for a full-range
ramp) everywhere, not the 254 that Pillow's convert("RGB") makes of it (it clips 16-bit
values at 255)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from textboost.bitstream.container import Container, Header

SIDE = 192  # at least the evaluation's MS-SSIM minimum (176 px)

@pytest.fixture(scope="module")
def codec(pipeline):
    """These tests exercise the method (words carried, fused decode): the pipeline."""
    return pipeline


@pytest.fixture(scope="module")
def grey16(tmp_path_factory):
    ramp = np.linspace(0, 65535, SIDE * SIDE).reshape(SIDE, SIDE).astype(np.uint16)
    path = tmp_path_factory.mktemp("img") / "grey16.png"
    Image.fromarray(ramp).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # really a 16-bit file
    expected = float(((ramp.astype(np.uint32) + 128) // 257).mean())
    assert expected == pytest.approx(127.5, abs=0.5)
    return path, expected


class SpyCodec:
    """Records the image each encode is handed; writes a small valid container."""

    model_id = b"SPY1"

    def __init__(self) -> None:
        self.images: list[np.ndarray] = []

    def encode(self, img: np.ndarray, rate: float, text: bool = True, meta=None) -> bytes:
        self.images.append(img)
        h = Header(self.model_id, img.shape[1], img.shape[0], 0, 1)
        return Container(header=h, z=b"z").to_bytes()

    def decode(self, data: bytes) -> np.ndarray:
        return self.decoded

    decoded: np.ndarray


def test_the_loader(grey16):
    from textboost.codec.image import load_image

    path, expected = grey16
    img = load_image(path)
    assert img.shape == (SIDE, SIDE, 3) and img.dtype == np.uint8
    assert img.mean() == pytest.approx(expected)


def test_uplink_encode_pipeline(grey16):
    from uplink import EncodePipeline, FixedRate

    path, expected = grey16
    spy = SpyCodec()
    EncodePipeline(FixedRate(0.5), codec_factory=lambda: spy).encode(path)
    assert spy.images[0].mean() == pytest.approx(expected)


def test_link_sim_codec_service(grey16, tmp_path):
    from link_sim.codec_service import CodecService

    path, expected = grey16
    service = CodecService(tmp_path / "cache", synthetic=True)
    assert service.reference(path).mean() == pytest.approx(expected)
    assert service.image_size(path) == (SIDE, SIDE)


def test_downlink_reference_for_psnr(grey16, tmp_path):
    from downlink import DownlinkNode
    from textboost.codec.image import load_image
    from textboost.protocol import LinkConfig, Sender

    path, _ = grey16
    spy = SpyCodec()
    spy.decoded = load_image(path)
    cfg = LinkConfig(arq="none")
    sender = Sender(cfg)
    h = Header(b"SPY1", SIDE, SIDE, 0, 1)
    sender.submit(0, Container(header=h, z=b"z").to_sections(), 0.0)
    node = DownlinkNode(cfg, references={0: path}, codec_factory=lambda: spy)
    for frame in sender.poll_transmit(0.0):
        node.receive(frame, 0.0)
    assert node.results[0].psnr_db == float("inf")  # the reference read as the decoder saw it


def test_evaluation(grey16):
    from textboost.eval.rd import load_checked_image

    path, expected = grey16
    assert load_checked_image(path).mean() == pytest.approx(expected)


def test_textboost_cli_encode(grey16, tmp_path, codec):
    from textboost.__main__ import main

    path, expected = grey16
    out = tmp_path / "grey16.tbx"
    assert main(["encode", str(path), str(out), "--rate", "0.5"]) == 0
    decoded = codec.decode(out.read_bytes())
    assert abs(decoded.mean() - expected) < 8  # a lossy copy of the ramp, not of 254
