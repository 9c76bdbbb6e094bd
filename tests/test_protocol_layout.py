"""Segment layout, empty sections, and a property test of the whole protocol under loss."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textboost.protocol import BundleDelivered, LinkConfig, Receiver, Sender
from textboost.protocol.frames import Descriptor
from textboost.protocol.layout import Layout

pytestmark = pytest.mark.edge


def test_fifo_packs_one_segment_interleave_one_per_class():
    d = Descriptor.of([b"h" * 5, b"z" * 7, b"a" * 3, b"b" * 4], [0, 1, 2, 2], 32)
    fifo = Layout.of(d, 10, "fifo")
    assert fifo.members == ((0, 1, 2, 3),) and fifo.segment_lengths == (29,)
    assert [(s.segment, s.offset) for s in fifo.spans] == [(0, 10), (0, 15), (0, 22), (0, 25)]
    inter = Layout.of(d, 10, "priority_interleave")
    assert inter.members == ((0,), (1,), (2, 3)) and inter.segment_lengths == (15, 7, 7)
    assert inter.segment_classes == (0, 1, 2)
    # A section's fragments: those holding its bytes.
    assert list(fifo.spans[1].fragments(8, 29)) == [1, 2]
    assert list(fifo.spans[3].fragments(8, 29)) == [3]


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 400), min_size=1, max_size=6),
    n_bundles=st.integers(1, 3),
    policy=st.sampled_from(["fifo", "priority_interleave"]),
    arq=st.sampled_from(["immediate", "deferred"]),
    fec=st.sampled_from([(0, 0), (4, 1)]),
    loss=st.sampled_from([0.0, 0.2, 0.4]),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_bundles_arrive_byte_exact_under_loss(sizes, n_bundles, policy, arq, fec, loss, seed):
    rng = np.random.default_rng(seed)
    cfg = LinkConfig(
        mtu_bytes=48,
        crc_bits=16,
        arq=arq,
        policy=policy,
        fec_k=fec[0],
        fec_m=fec[1],
        rto_s=2.0,
        nak_timeout_s=2.0,
        max_retries=60,
    )
    s, r = Sender(cfg), Receiver(cfg)
    sent = {}
    for b in range(n_bundles):
        sections = [rng.bytes(n) for n in sizes]  # empty sections included
        classes = sorted(int(c) for c in rng.integers(0, 3, len(sizes)))
        s.submit(b, sections, 0.0, classes)
        sent[b] = tuple(sections)
    got = {}
    t = 0.0
    while s.active_bundles and t < 2000:
        for f in s.poll_transmit(t, 200):
            if rng.random() >= loss:
                got.update(
                    {
                        e.bundle_id: e.sections
                        for e in r.receive(f, t)
                        if isinstance(e, BundleDelivered)
                    }
                )
        for f in r.poll_transmit(t):
            if rng.random() >= loss:
                s.receive(f, t)
        t += 1.0
        for end in (s, r):
            timer = end.next_timer()
            if timer is not None and timer <= t:
                end.handle_timeout(t)
    assert got == sent


@settings(max_examples=100, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=6),
    fec=st.sampled_from([(0, 0), (3, 1), (6, 3)]),
    loss=st.sampled_from([0.0, 0.1, 0.3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_one_way_delivers_only_exact_prefixes(sizes, fec, loss, seed):
    """Without ARQ, what arrives is exact and in order, and FEC never invents data."""
    from textboost.protocol import SectionDelivered

    rng = np.random.default_rng(seed)
    cfg = LinkConfig(mtu_bytes=40, crc_bits=16, arq="none", fec_k=fec[0], fec_m=fec[1])
    s, r = Sender(cfg), Receiver(cfg)
    sections = [rng.bytes(n) for n in sizes]
    s.submit(7, sections, 0.0)
    frames = [f for f in s.poll_transmit(0.0) if rng.random() >= loss]
    got = [e for f in frames for e in r.receive(f, 0.0) if isinstance(e, SectionDelivered)]
    assert [e.index for e in got] == list(range(len(got)))
    assert [e.data for e in got] == sections[: len(got)]
    if loss == 0.0:
        assert len(got) == len(sections)


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    fec=st.sampled_from([(0, 0), (3, 2)]),
    policy=st.sampled_from(["fifo", "priority_interleave"]),
    n_mutations=st.integers(1, 6),
)
def test_receiver_survives_mutated_frames_with_valid_crc(seed, fec, policy, n_mutations):
    """A buggy or hostile peer: real frames with bytes changed and the CRC recomputed, so
    every parser past the FCS (descriptor, layout, FEC, NAK bookkeeping) sees them. The
    receiver must count and drop, never raise, and never deliver bytes that were not sent."""
    from textboost.protocol.frames import FrameError, seal

    rng = np.random.default_rng(seed)
    cfg = LinkConfig(mtu_bytes=40, arq="immediate", policy=policy, fec_k=fec[0], fec_m=fec[1])
    s = Sender(cfg)
    sections = [rng.bytes(int(n)) for n in rng.integers(0, 120, size=int(rng.integers(1, 5)))]
    s.submit(1, sections, 0.0, sorted(int(c) for c in rng.integers(0, 3, len(sections))))
    frames = s.poll_transmit(0.0)
    r = Receiver(cfg)
    for _ in range(n_mutations):
        k = int(rng.integers(len(frames)))
        body = bytearray(frames[k][:-4])
        pos = int(rng.integers(len(body)))
        body[pos] = int(rng.integers(256))
        try:  # a long header names its epoch and packet number; a short one: epoch 0
            frames.append(seal(bytes(body), LinkConfig(mtu_bytes=40)))
        except FrameError:
            pn = int.from_bytes(bytes(body[1:3]).ljust(2, b"\0"), "big")
            frames.append(seal(bytes(body), LinkConfig(mtu_bytes=40), 0, pn))
    order = rng.permutation(len(frames))
    for k in order:
        for e in r.receive(frames[k], 0.0):
            if isinstance(e, BundleDelivered):
                assert e.sections == tuple(sections)
        r.poll_transmit(0.0)
    r.handle_timeout(100.0)
