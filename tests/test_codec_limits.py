"""Bounded memory at any input size: coded-size cap, budget-driven start scale, input limit."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from textboost import BitstreamError
from textboost.bitstream.container import Container, Header, coded_size
from textboost.codec.budget import MAX_CODED_PIXELS, start_scale
from textboost.codec.image import MAX_IMAGE_PIXELS, load_image


@pytest.fixture(scope="module")
def codec(pipeline):
    """These tests exercise the method (words carried, fused decode): the pipeline."""
    return pipeline


@pytest.mark.parametrize(("w", "h"), [(6000, 4000), (4000, 3000), (1920, 1080), (768, 512)])
def test_start_scale_caps_coded_pixels(w, h):
    scale = start_scale(w, h)
    cw, ch = coded_size(w, h, scale)
    assert cw * ch <= MAX_CODED_PIXELS
    if w * h <= MAX_CODED_PIXELS:
        assert scale == 8  # small enough frames code at full size
    # a budget that cannot pay for a large coded image starts smaller
    small = start_scale(w, h, budget=500)
    cw2, ch2 = coded_size(w, h, small)
    assert small >= scale and cw2 * ch2 * 0.012 / 8 <= 500


def test_large_frame_codes_small_and_decodes_full_size(codec):
    rng = np.random.default_rng(3)
    base = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    img = np.kron(base, np.ones((100, 100, 1), dtype=np.uint8))  # 4000×3000, 12 MP
    data = codec.encode_to_budget(img, max_bytes=600, text=False)
    hd = Container.parse(data).header
    cw, ch = hd.coded_size
    assert len(data) <= 600 and (hd.width, hd.height) == (4000, 3000)
    assert cw * ch <= 400_000  # g_a never ran on the 12 MP frame
    assert codec.decode(data, fusion=False).shape == (3000, 4000, 3)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG claiming a size: signature, IHDR and an empty IDAT, and no pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"")


def test_oversized_file_refused_before_decoding(tmp_path):
    p = tmp_path / "huge.png"
    p.write_bytes(_png_header_only(9000, 9000))
    with pytest.raises(ValueError, match=r"huge.png: image 9000x9000 \(81 MP\) exceeds"):
        load_image(p)
    assert MAX_IMAGE_PIXELS < 9000 * 9000
    p.write_bytes(_png_header_only(20000, 20000))  # past Pillow's own bomb check too
    with pytest.raises(ValueError, match=r"huge\.png"):
        load_image(p)


def test_cli_refuses_oversized_input_in_one_line(tmp_path):
    from textboost.__main__ import main

    p = tmp_path / "huge.png"
    p.write_bytes(_png_header_only(9000, 9000))
    assert main(["encode", str(p), str(tmp_path / "o.tbx"), "--max-bytes", "1500"]) == 2


def test_forged_header_with_huge_coded_size_is_refused(codec):
    w, h = 4000, 3000  # within the image limit, but claims to be coded at full size
    header = Header(codec.model_id, w, h, 0, codec.codec.n_groups, 8)
    forged = Container(header, b"", b"\x00").to_bytes()
    with pytest.raises(BitstreamError, match="coded size 4000x3000"):
        codec.decode(forged)
