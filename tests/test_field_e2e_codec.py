"""End to end with the real codec (``codec`` and ``kodim23`` fixtures from conftest): a
128×128 crop of Kodak 23 is encoded at the edge (through the encode cache), sent over an
in-memory lossy wire with the real protocol, and decoded at the ground — whole, and from a
partial prefix when the link dies early."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from downlink import DownlinkNode
from textboost.bitstream.container import Container
from textboost.protocol import LinkConfig, SectionDelivered
from uplink import Capture, EncodeCache, EncodePipeline, FixedRate, UplinkNode


@pytest.fixture(scope="module")
def codec(pipeline):
    """These tests exercise the method (words carried, fused decode): the pipeline."""
    return pipeline


@pytest.fixture
def crop(tmp_path, kodim23) -> tuple[Path, np.ndarray]:
    """A 128×128 crop of Kodak 23 (conftest's ``kodim23``), also as a PNG file."""
    img = kodim23[100:228, 300:428].copy()
    path = tmp_path / "kodim23_crop.png"
    Image.fromarray(img).save(path)
    return path, img


def test_real_image_over_lossy_link(tmp_path, codec, crop):
    path, img = crop
    cfg = LinkConfig(mtu_bytes=64, arq="immediate", rto_s=2.0, nak_timeout_s=2.0, max_retries=30)
    cache = EncodeCache(tmp_path / "cache")
    edge = UplinkNode(cfg, pipeline=EncodePipeline(FixedRate(0.5), cache, lambda: codec))
    edge.capture(Capture(path, 0.0), 0.0)
    # A second pipeline over the same cache does not run the encoder again.
    again = EncodePipeline(FixedRate(0.5), cache, lambda: codec).encode(path)
    assert again.cached and (cache.misses, cache.hits) == (1, 1)
    data = again.data
    assert edge.images[path.name].size_bytes == len(data)
    assert Container.parse(data).header.width == 128

    ground = DownlinkNode(
        cfg, out_dir=tmp_path / "rx", references={0: img}, codec_factory=lambda: codec
    )
    rng = np.random.default_rng(23)
    t = 0.0
    while not edge.idle and t < 500:
        for f in edge.poll_transmit(t, budget_bytes=256):
            if rng.random() >= 0.25:
                ground.receive(f, t)
        for f in ground.poll_transmit(t):
            if rng.random() >= 0.25:
                edge.receive(f, t)
        t += 1.0
        for end in (edge, ground):
            timer = end.next_timer()
            if timer is not None and timer <= t:
                end.handle_timeout(t)
    assert edge.idle and edge.images[path.name].acked_s is not None
    assert edge.sender.stats.retransmitted_frames > 0
    (res,) = ground.finish(t)
    assert res.complete and res.decoded and res.error is None
    decoded = np.asarray(Image.open(res.png_path))
    assert np.array_equal(decoded, codec.decode(data))  # bit-exact through the link
    assert res.psnr_db is not None and res.psnr_db > 18.0
    assert res.bytes_delivered == sum(map(len, Container.parse(data).to_sections()))


def test_partial_image_decodes_from_prefix(tmp_path, codec, crop):
    _, img = crop
    data = codec.encode(img, rate=0.8)
    c = Container.parse(data)
    cfg = LinkConfig(mtu_bytes=64, arq="none")
    edge = UplinkNode(cfg)
    edge.store("crop", data, 0.0)
    ground = DownlinkNode(
        cfg, out_dir=tmp_path / "rx", references={0: img}, codec_factory=lambda: codec
    )
    for f in edge.poll_transmit(0.0):
        events = ground.receive(f, 0.0)
        got = [e.index for e in events if isinstance(e, SectionDelivered)]
        if got and max(got) >= 2:
            break  # the link dies once header, z and y group 1 (maybe 2: one frame) are in
    k = max(got) - 1  # y groups in
    (res,) = ground.finish(1.0)
    assert not res.complete and res.decoded and res.groups_delivered == k < c.header.n_groups
    partial = np.asarray(Image.open(res.png_path))
    assert np.array_equal(partial, codec.decode(c.truncated(k).to_bytes()))
    assert res.psnr_db is not None and np.isfinite(res.psnr_db)


def test_a_bundle_is_parsed_once_and_its_words_read_once(tmp_path, codec, monkeypatch):
    """The committed reference stream of the shipped model with two words in its text
    section, sent twice (two bundles): the ground parses each bundle's container once (its
    first section when it lands, the rest when it is whole; the decode parses nothing) and
    reads its words once (when the first section lands; fusion draws those), and stores
    and decodes exactly what a decode of the bytes gives."""
    from dataclasses import replace

    import textboost.text.payload
    from downlink import node as node_module
    from textboost.text.payload import encode_words
    from textboost.text.words import Word

    ref = Container.parse((Path(__file__).parent / "data" / "reference.tbx").read_bytes())
    w, h = ref.header.width, ref.header.height
    quads = {"EXIT": [[8, 10], [70, 10], [70, 30], [8, 30]],
             "RESCUE": [[20, 50], [110, 50], [110, 80], [20, 80]]}  # fmt: skip
    words = [Word(np.array(q, float), s) for s, q in quads.items()]
    data = replace(ref, text=encode_words(words, w, h)).to_bytes()
    expected = codec.receive(data)
    assert [x.text for x in expected.words] == ["EXIT", "RESCUE"]

    cfg = LinkConfig(mtu_bytes=64, arq="none")
    edge = UplinkNode(cfg)
    edge.store("a", data, 0.0)
    edge.store("b", data, 0.0)
    frames = edge.poll_transmit(0.0)  # the edge parses too: count the ground alone

    counts = {"parse": 0, "words": 0}
    parse, decode_words = Container.parse.__func__, textboost.text.payload.decode_words

    def counted_parse(cls, *args, **kw):
        counts["parse"] += 1
        return parse(cls, *args, **kw)

    def counted_words(*args, **kw):
        counts["words"] += 1
        return decode_words(*args, **kw)

    monkeypatch.setattr(Container, "parse", classmethod(counted_parse))
    monkeypatch.setattr(textboost.text.payload, "decode_words", counted_words)
    monkeypatch.setattr(node_module, "decode_words", counted_words)
    ground = DownlinkNode(cfg, out_dir=tmp_path / "rx", codec_factory=lambda: codec)
    for f in frames:
        ground.receive(f, 0.0)
    results = ground.finish(1.0)
    assert counts == {"parse": 2, "words": 2}  # one each per bundle
    assert [r.complete and r.decoded for r in results] == [True, True]
    for r in results:
        assert [x["text"] for x in r.words] == ["EXIT", "RESCUE"]
        assert Path(r.tbx_path).read_bytes() == data
        assert np.array_equal(np.asarray(Image.open(r.png_path)), expected.image)
