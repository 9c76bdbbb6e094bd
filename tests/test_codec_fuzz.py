"""Tampered `.tbx` streams whose CRCs were recomputed (so they reach the entropy decoder)
raise only BitstreamError naming the section, and the decoder refuses headers larger than
its configured pixel limit (issue 16)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textboost.bitstream.container import BitstreamError, Container
from textboost.codec.api import MAX_DECODE_PIXELS

SECTION_NAMES = ("header", "text", "z", "y group")

@pytest.fixture(scope="module")
def codec(pipeline):
    """These tests exercise the method (words carried, fused decode): the pipeline."""
    return pipeline


@pytest.fixture(scope="module")
def stream(codec, small_image) -> bytes:
    # A high rate: long y streams, where about one tampered stream in four used to end in
    # constriction's AssertionError instead of BitstreamError.
    return codec.encode(small_image[:64, :96], rate=0.9)


def test_decode_limit_is_configurable_and_names_size_and_limit(codec, stream):
    c = Container.parse(stream)
    assert codec.codec.max_pixels == MAX_DECODE_PIXELS == 1 << 26
    big = replace(c, header=replace(c.header, width=8200, height=8200)).to_bytes()
    with pytest.raises(BitstreamError, match=r"8200x8200 .*limit of 67108864 pixels"):
        codec.decode(big)
    with pytest.raises(BitstreamError, match=r"96x64 .*limit of 5000 pixels"):
        codec.decode(stream, max_pixels=5000)
    assert codec.decode(stream, max_pixels=96 * 64).shape == (64, 96, 3)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    section=st.integers(0, 7),
    edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1,
                   max_size=16),
    cut=st.sampled_from([None, None, None, 0, 1, 3]),
)
def test_fuzz_tampered_streams_with_fixed_crcs_raise_only_bitstream_error(
    codec, stream, section, edits, cut
):
    sections = Container.parse(stream).to_sections()
    k = section % len(sections)
    data = bytearray(sections[k])
    if data:
        for pos, val in edits:
            data[pos % len(data)] = val
    if cut is not None:
        data = data[: max(0, len(data) - cut)]
    sections[k] = bytes(data)
    try:
        tampered = Container.from_sections(sections).to_bytes()  # CRCs recomputed
        out = codec.decode(tampered)  # with the fusion block when it ships: text decoded too
    except BitstreamError as e:
        assert str(e).startswith(SECTION_NAMES) or "header" in str(e) or "bundle" in str(e)
        return
    assert out.dtype == np.uint8 and out.shape == (64, 96, 3)  # garbage, but an image
