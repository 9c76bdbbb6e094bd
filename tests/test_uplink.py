"""The edge node: sources, encode cache and pipeline, storage limits, bundling, CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from tests.helpers import ROOT, run_module
from textboost.bitstream.container import BitstreamError, Container, Header
from textboost.protocol import BundleState, LinkConfig, Receiver
from uplink import (
    ByteBudget,
    Capture,
    EncodeCache,
    EncodePipeline,
    FixedRate,
    FolderSource,
    PathListSource,
    StoreAndForward,
    UplinkNode,
)
from uplink.store import StoredImage


def tbx(rng: np.random.Generator, groups: tuple[int, ...] = (50, 80, 120), text: bytes = b"EXIT"):
    header = Header(model_id=b"TST1", width=96, height=64, rate=1000, n_groups=len(groups) + 1)
    return Container(
        header=header, text=text, z=rng.bytes(30), groups=tuple(rng.bytes(n) for n in groups)
    ).to_bytes()


def test_import_does_not_load_torch():
    code = "import sys, uplink; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_sources(tmp_path):
    for name in ("b.png", "a.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    src = FolderSource(tmp_path, interval_s=10.0, start_s=5.0)
    assert [(c.image_id, c.capture_s) for c in src] == [("a.png", 5.0), ("b.png", 15.0)]
    with pytest.raises(FileNotFoundError, match="no such folder"):
        FolderSource(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        FolderSource(tmp_path / "empty")
    with pytest.raises(ValueError, match="must not decrease"):
        PathListSource([tmp_path / "a.png", tmp_path / "b.png"], [2.0, 1.0])
    with pytest.raises(FileNotFoundError, match=r"nope\.png"):
        PathListSource([tmp_path / "nope.png"])


def test_storage_drops_with_records_never_silently():
    store = StoreAndForward(1000, "lowest_priority")
    assert store.push(StoredImage("a", bytes(400), 0.0, priority=5)) == []
    assert store.push(StoredImage("b", bytes(400), 1.0, priority=1)) == []
    drops = store.push(StoredImage("c", bytes(400), 2.0, priority=3))
    assert [d.image_id for d in drops] == ["b"] and "storage full" in drops[0].reason
    assert store.pop_next().image_id == "a"  # highest priority first, now in flight
    refused = store.push(StoredImage("d", bytes(700), 3.0))
    assert refused[0].image_id == "d" and refused[0].reason.startswith("refused")
    oldest = StoreAndForward(800, "oldest")
    oldest.push(StoredImage("x", bytes(400), 0.0, priority=9))
    oldest.push(StoredImage("y", bytes(400), 1.0))
    assert [d.image_id for d in oldest.push(StoredImage("z", bytes(100), 2.0))] == ["x"]
    assert len(store.dropped) == 2 and len(oldest.dropped) == 1


_QUEUE_OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("push"),
            st.sampled_from("abc"),  # ids repeat: a resend of one name
            st.integers(0, 700),  # bytes (some over the capacity: refused)
            st.integers(-2, 2),  # priority
        ),
        st.tuples(st.just("pop")),
        st.tuples(st.just("release"), st.sampled_from("abcd")),
    ),
    max_size=60,
)


@given(
    policy=st.sampled_from(["oldest", "lowest_priority"]),
    capacity=st.integers(1, 1500),
    ops=_QUEUE_OPS,
)
def test_storage_running_total_equals_the_sum(policy, capacity, ops):
    """The running total ``used_bytes`` is the sum of what waits and what is in flight
    after any sequence of pushes, pops, releases and the drops they cause."""
    store = StoreAndForward(capacity, policy)
    for t, op in enumerate(ops):
        if op[0] == "push":
            store.push(StoredImage(op[1], bytes(op[2]), float(t), priority=op[3]))
        elif op[0] == "pop":
            store.pop_next()
        else:
            store.release(op[1])
        held = sum(len(i.data) for i in store.waiting) + sum(store.in_flight.values())
        assert store.used_bytes == held <= capacity


class CountingCodec:
    """A small stand-in for ``Codec`` (the pipeline under test only needs its interface):
    writes a valid container whose z is a digest of the pixels, and counts encodes."""

    model_id = b"TST1"

    def __init__(self) -> None:
        self.calls = 0
        self.texts: list[bool] = []

    def encode(self, img: np.ndarray, rate: float, text: bool = True, meta=None) -> bytes:
        self.calls += 1
        self.texts.append(text)
        h = Header(
            model_id=self.model_id,
            width=img.shape[1],
            height=img.shape[0],
            rate=int(rate * 65535),
            n_groups=2,
            meta=meta,
        )
        words = b"\x00WORDS" if text else b""  # stands in for a text section
        return Container(header=h, text=words, z=img.tobytes()[:16], groups=(b"g",)).to_bytes()

    def encode_to_budget(
        self, img: np.ndarray, *, max_bytes: int, text: bool = True, meta=None
    ) -> bytes:
        data = self.encode(img, 0.1, text, meta)
        assert len(data) <= max_bytes
        return data


def test_encode_cache_avoids_reencoding(tmp_path):
    img_path = tmp_path / "img.png"
    Image.fromarray(np.full((8, 12, 3), 77, np.uint8)).save(img_path)
    codec = CountingCodec()
    cache = EncodeCache(tmp_path / "cache")
    pipe = EncodePipeline(FixedRate(0.5), cache, codec_factory=lambda: codec)
    first = pipe.encode(img_path)
    second = EncodePipeline(FixedRate(0.5), cache, codec_factory=lambda: codec).encode(img_path)
    assert codec.calls == 1 and second.cached and second.data == first.data
    assert (first.width, first.height) == (12, 8)
    EncodePipeline(FixedRate(0.25), cache, codec_factory=lambda: codec).encode(img_path)
    EncodePipeline(ByteBudget(500), cache, codec_factory=lambda: codec).encode(img_path)
    assert codec.calls == 3  # other settings are other keys
    for f in (tmp_path / "cache").rglob("*.tbx"):  # a damaged entry is a miss, not an error
        f.write_bytes(b"junk")
    pipe.encode(img_path)
    assert codec.calls == 4
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"bad\.png"):
        pipe.encode(bad)


def test_sidecar_metadata_goes_into_the_header_and_the_cache_key(tmp_path):
    img_path = tmp_path / "img.png"
    Image.fromarray(np.full((8, 12, 3), 77, np.uint8)).save(img_path)
    codec = CountingCodec()
    cache = EncodeCache(tmp_path / "cache")
    pipe = EncodePipeline(FixedRate(0.5), cache, codec_factory=lambda: codec)
    # no EXIF, no sidecar: the record carries the file's name alone
    assert Container.parse(pipe.encode(img_path).data).header.meta.to_json() == {"name": "img.png"}
    side = tmp_path / "img.json"
    side.write_text('{"time": "2026-12-03T10:00:00Z", "lat": 52.5, "lon": 13.4}')
    meta = Container.parse(pipe.encode(img_path).data).header.meta
    assert codec.calls == 2 and meta.lat == pytest.approx(52.5, abs=1e-5)
    side.write_text('{"time": "2026-12-03T10:00:00Z", "lat": 52.6, "lon": 13.4}')
    assert Container.parse(pipe.encode(img_path).data).header.meta.lat == pytest.approx(52.6)
    assert codec.calls == 3  # a changed sidecar is a new key, never a stale header
    off = EncodePipeline(FixedRate(0.5), cache, codec_factory=lambda: codec, meta=False)
    assert Container.parse(off.encode(img_path).data).header.meta is None
    side.write_text('{"lat": "north"}')
    with pytest.raises(ValueError, match=r"img\.json: lat 'north': expected a number"):
        pipe.encode(img_path)


def test_node_feeds_sender_and_frees_storage_on_ack():
    rng = np.random.default_rng(1)
    cfg = LinkConfig(mtu_bytes=128)
    node = UplinkNode(cfg, storage_bytes=4000, max_in_flight=1)
    images = {f"img{i}": tbx(rng) for i in range(3)}
    for i, (name, data) in enumerate(images.items()):
        assert node.store(name, data, float(i)) == []
    rx = Receiver(cfg)
    got = {}
    t = 0.0
    while not node.idle and t < 100:
        for f in node.poll_transmit(t):
            for e in rx.receive(f, t):
                if type(e).__name__ == "BundleDelivered":
                    got[node.bundle_image[e.bundle_id]] = e.sections
        assert len(node.sender.active_bundles) <= 1
        for f in rx.poll_transmit(t):
            node.receive(f, t)
        t += 1.0
    assert node.idle and node.storage.used_bytes == 0
    for name, data in images.items():
        assert tuple(got[name]) == tuple(Container.parse(data).to_sections())
        assert node.images[name].acked_s is not None
    with pytest.raises(ValueError, match="img0"):
        node.store("img0", images["img0"], 9.0)
    with pytest.raises(BitstreamError):
        node.store("bad", images["img1"][:-3], 9.0)


def test_node_one_way_releases_storage_when_sent():
    rng = np.random.default_rng(2)
    node = UplinkNode(LinkConfig(mtu_bytes=128, arq="none"), storage_bytes=10_000)
    node.store("a", tbx(rng), 0.0)
    assert node.poll_transmit(0.0)
    assert node.idle and node.sender.state(node.images["a"].bundle_id) is BundleState.DONE


def test_capture_without_pipeline_is_a_clear_error(tmp_path):
    node = UplinkNode(LinkConfig())
    with pytest.raises(RuntimeError, match="no encode pipeline"):
        node.capture(Capture(tmp_path / "x.png", 0.0), 0.0)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["send", "MISSING_DIR", "--to", "127.0.0.1:9"], "MISSING_DIR"),
        (["send", ".", "--to", "127.0.0.1"], "host:port"),
        (["send", ".", "--to", "h:9", "--mtu", "10"], "mtu_bytes"),
        (["send", ".", "--to", "h:9", "--arq", "maybe"], "--arq"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(argv, needle):
    out = run_module("uplink", *argv)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]


def test_cli_help_shows_field_example():
    out = run_module("uplink", "send", "--help", check=True)
    assert "--to 192.0.2.10:9000" in out.stdout


def test_cache_hit_does_not_load_the_codec(tmp_path):
    """The codec (and torch) load on the first encode that misses the cache, never for a
    hit: the model id a cache key needs comes from the model file."""
    from textboost.pipeline.loader import PipelineLoader
    from uplink.cache import file_sha256

    img_path = tmp_path / "img.png"
    Image.fromarray(np.full((8, 12, 3), 77, np.uint8)).save(img_path)
    model_id = PipelineLoader().model_id
    policy = FixedRate(0.5)
    cache = EncodeCache(tmp_path / "cache")
    h = Header(model_id=model_id, width=12, height=8, rate=1000, n_groups=5)
    stored = Container(header=h, z=b"z" * 8).to_bytes()
    key = EncodePipeline(policy, cache).settings  # rate settings + text on
    assert key.startswith(policy.settings) and "text=on" in key
    cache.put(file_sha256(img_path), key, model_id, stored)
    code = (
        "import sys\n"
        "from uplink import EncodeCache, EncodePipeline, FixedRate\n"
        f"pipe = EncodePipeline(FixedRate(0.5), EncodeCache({str(tmp_path / 'cache')!r}), "
        "name=False)\n"
        f"enc = pipe.encode({str(img_path)!r})\n"
        "print(enc.cached, pipe.loader.loaded, 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["True", "False", "False"]


def test_codec_factory_runs_once_and_only_on_a_miss(tmp_path):
    from textboost.pipeline.loader import PipelineLoader

    img_path = tmp_path / "img.png"
    Image.fromarray(np.full((8, 12, 3), 77, np.uint8)).save(img_path)
    calls = []

    def factory():
        calls.append(1)
        return CountingCodec()

    cache = EncodeCache(tmp_path / "cache")
    loader = PipelineLoader(factory=factory)
    first = EncodePipeline(FixedRate(0.5), cache, loader).encode(img_path)
    EncodePipeline(FixedRate(0.25), cache, loader).encode(img_path)
    assert len(calls) == 1 and not first.cached  # one load serves every pipeline
    fresh = PipelineLoader(factory=factory, model_id=CountingCodec.model_id)
    hit = EncodePipeline(FixedRate(0.5), cache, fresh).encode(img_path)
    assert hit.cached and not fresh.loaded and len(calls) == 1


def test_text_setting_is_part_of_the_cache_key(tmp_path):
    """A stream encoded without words is never served for a request with words, nor the
    other way round; each setting is encoded once and then served from the cache."""
    img_path = tmp_path / "img.png"
    Image.fromarray(np.full((8, 12, 3), 99, np.uint8)).save(img_path)
    codec = CountingCodec()
    cache = EncodeCache(tmp_path / "cache")

    def pipe(text: bool) -> EncodePipeline:
        return EncodePipeline(ByteBudget(500), cache, codec_factory=lambda: codec, text=text)

    assert pipe(True).settings != pipe(False).settings
    assert "text=off" in pipe(False).settings
    plain = pipe(False).encode(img_path)
    with_words = pipe(True).encode(img_path)
    assert codec.texts == [False, True] and not with_words.cached
    assert Container.parse(plain.data).text == b""
    assert Container.parse(with_words.data).text != b""
    again = pipe(True).encode(img_path), pipe(False).encode(img_path)
    assert all(e.cached for e in again) and codec.calls == 2
    assert again[0].data == with_words.data and again[1].data == plain.data


def test_cli_has_no_text_switch():
    out = run_module("uplink", "send", "--help", check=True)
    assert "--no-text" in out.stdout


def test_restore_closer_sends_the_senders_choice_of_restored_words(tmp_path):
    """``restore: closer`` on the sender: the stream is the one ``restore: all`` sends with
    the word flags :meth:`Pipeline.choose_restored` sets on the source (same length), under
    its own cache key; a value other than all/closer is refused by name."""
    from textboost.codec.image import load_image
    from textboost.pipeline.api import Pipeline
    from textboost.pipeline.loader import PipelineLoader

    path = ROOT / "link_sim" / "data" / "kodak_text" / "kodim03_text.png"
    cache = EncodeCache(tmp_path / "cache")
    every = EncodePipeline(ByteBudget(2000), cache, PipelineLoader(fusion=False))
    closer = EncodePipeline(ByteBudget(2000), cache, PipelineLoader(fusion=True), restore="closer")
    assert every.settings != closer.settings and "restore=closer" in closer.settings
    a, b = every.encode(path), closer.encode(path)
    assert not b.cached and len(a.data) == len(b.data)
    assert b.data == Pipeline.load(spotter=None).choose_restored(a.data, load_image(path))
    assert closer.encode(path).data == b.data  # served from its own key
    assert EncodePipeline(ByteBudget(2000), None, text=False, restore="closer").restore == "all"
    with pytest.raises(ValueError, match="restore 'some'"):
        EncodePipeline(ByteBudget(2000), None, restore="some")


def test_field_config_takes_restore_and_names_a_bad_value(tmp_path):
    from tests.field_harness import write_config
    from textboost.field.config import load_field_config
    from textboost.settings.load import ConfigError

    config = write_config(tmp_path)
    text = config.read_text()
    config.write_text(text.replace("  poll_s:", "  restore: closer\n  poll_s:"))
    assert load_field_config(config).uplink.restore == "closer"
    config.write_text(text.replace("  poll_s:", "  restore: some\n  poll_s:"))
    with pytest.raises(ConfigError, match="restore"):
        load_field_config(config)
