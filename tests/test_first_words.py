"""The first words at the ground before the rest of the text section: the receiver's
SectionProgress and the ground node reading whole words from it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from downlink import DownlinkNode
from downlink.node import read_first_words
from textboost.bitstream import BitstreamError
from textboost.bitstream.container import Container, Header
from textboost.protocol import LinkConfig, Receiver, SectionDelivered, SectionProgress, Sender
from textboost.text.payload import encode_words
from textboost.text.words import Word, rect_quad

W, H = 640, 480
WORDS = [Word(rect_quad(30 + 50 * i, 40 + 30 * i, 60, 14, 0.0), t, 0.9) for i, t in enumerate(
    ["Exit", "KA 5510", "Genaxis Theatre", "62-03", "Carpark level two", "M5 XSX", "km 7"]
)]  # fmt: skip


def _sections() -> list[bytes]:
    rng = np.random.default_rng(1)
    header = Header(model_id=b"TST1", width=W, height=H, rate=0, n_groups=2)
    c = Container(header=header, text=encode_words(WORDS, W, H), z=rng.bytes(80),
                  groups=(rng.bytes(120), rng.bytes(200)))  # fmt: skip
    return c.to_sections()


def _frames(cfg: LinkConfig) -> list[bytes]:
    s = Sender(cfg)
    s.submit(3, _sections(), 0.0)
    return s.poll_transmit(0.0)


@pytest.mark.parametrize("policy", ["fifo", "priority_interleave"])
def test_progress_hands_out_growing_prefixes_of_section_0(policy):
    cfg = LinkConfig(mtu_bytes=40, arq="none", policy=policy)
    r = Receiver(cfg, progress=True)
    head = _sections()[0]
    got = [e for f in _frames(cfg) for e in r.receive(f, 0.0)]
    progress = [e.data for e in got if isinstance(e, SectionProgress)]
    assert len(progress) >= 3  # section 0 spans several frames: it comes in pieces
    assert all(head.startswith(p) for p in progress)
    assert [len(p) for p in progress] == sorted({len(p) for p in progress})
    delivered = [e for e in got if isinstance(e, SectionDelivered)]
    assert delivered[0].index == 0 and delivered[0].data == head
    quiet = Receiver(cfg)  # off by default: the driver asks for it
    events = [e for f in _frames(cfg) for e in quiet.receive(f, 0.0)]
    assert not any(isinstance(e, SectionProgress) for e in events)


def test_the_ground_reads_the_first_words_and_a_lost_frame_loses_only_later_words(tmp_path):
    cfg = LinkConfig(mtu_bytes=40, arq="none", policy="priority_interleave")
    frames = _frames(cfg)
    seen = []
    node = DownlinkNode(cfg, out_dir=tmp_path, codec_factory=None, on_text=seen.append)
    for f in frames:
        node.receive(f, 0.0)
    order = [w["text"] for w in seen[-1].words]
    assert seen[-1].complete and sorted(order) == sorted(w.text for w in WORDS)
    assert order[:2] == ["KA 5510", "M5 XSX"]  # plates first
    early = [r for r in seen if not r.complete]
    assert early and all(r.total_words == len(WORDS) for r in early)
    for r in early:  # each early result: the leading words of the final order
        assert [w["text"] for w in r.words] == order[: len(r.words)]
    assert early[0].section_bytes < len(_sections()[0])
    # the same frames with the one that carries the section's last bytes lost
    cut = max(k for k, f in enumerate(frames) if _in_section_0(cfg, frames, k))
    lossy = DownlinkNode(cfg, codec_factory=None)
    for k, f in enumerate(frames):
        if k != cut:
            lossy.receive(f, 0.0)
    partial = lossy.texts[3]
    assert not partial.complete and 0 < len(partial.words) < len(WORDS)
    assert [w["text"] for w in partial.words] == order[: len(partial.words)]


def _in_section_0(cfg: LinkConfig, frames: list[bytes], k: int) -> bool:
    """Does frame k add bytes to section 0 (seen by a receiver fed frames 0..k)?"""
    r = Receiver(cfg, progress=True)
    before = [e for f in frames[:k] for e in r.receive(f, 0.0)]
    done = any(isinstance(e, SectionDelivered) for e in before)
    return not done and any(
        isinstance(e, SectionProgress | SectionDelivered) for e in r.receive(frames[k], 0.0)
    )


@pytest.mark.parametrize("policy", ["fifo", "priority_interleave", "words_first"])
def test_words_first_sends_every_queued_photos_words_then_pictures_in_order(policy):
    cfg = LinkConfig(mtu_bytes=64, arq="none", policy=policy)
    s, r = Sender(cfg), Receiver(cfg)
    for b in range(3):
        s.submit(b, _sections(), 0.0)
    order = [
        (e.bundle_id, e.index)
        for f in s.poll_transmit(0.0)
        for e in r.receive(f, 0.0)
        if isinstance(e, SectionDelivered)
    ]
    assert sorted(order) == [(b, k) for b in range(3) for k in range(4)]
    words = [order.index((b, 0)) for b in range(3)]
    pictures = [order.index((b, 1)) for b in range(3)]  # z: the first picture
    if policy == "fifo":  # bundle by bundle: photo 2's words wait for photo 1's picture
        assert words[1] > order.index((0, 3))
    else:  # every photo's words before any picture
        assert max(words) < min(pictures)
    if policy == "words_first":  # pictures do not overtake each other
        assert order.index((0, 3)) < pictures[1] and order.index((1, 3)) < pictures[2]
    if policy == "priority_interleave":  # every z before photo 1's y groups
        assert max(pictures) < order.index((0, 2))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120), st.integers(0, 400))
def test_parse_head_of_any_bytes_or_prefix_is_none_a_prefix_or_a_bitstream_error(junk, cut):
    head = _sections()[0]
    text = Container.parse(head).text
    got = Container.parse_head(head[:cut])
    if got is not None:  # the header is whole: the text's leading bytes follow it
        header, lead = got
        assert (header.width, header.height) == (W, H) and text.startswith(lead)
    for data in (junk, head[:cut] + junk):
        try:
            got = Container.parse_head(data)
            res = read_first_words(3, data, 0.0)
        except BitstreamError:
            continue
        assert got is None or isinstance(got[1], bytes)
        assert res is None or (not res.complete and res.words)
