"""g_s in tiles: the same picture as g_s over the whole coded image, in bounded pieces."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from textboost.codec.tiled import REACH, STRIDE, synthesis_tiled


def _local(y: np.ndarray) -> np.ndarray:
    """A synthesis whose output pixels depend on latents up to REACH cells away, zero
    padded at the edges like g_s's convolutions: a box sum, then 16x upsampling."""
    _, h, w, _ = y.shape
    p = np.pad(y.sum(-1), ((0, 0), (REACH, REACH), (REACH, REACH)))
    s = sum(
        p[:, i : i + h, j : j + w] * (1 + i + 3 * j)
        for i in range(2 * REACH + 1)
        for j in range(2 * REACH + 1)
    )
    x = np.repeat(np.repeat(s, STRIDE, axis=1), STRIDE, axis=2)
    return np.stack([x, -x, 2 * x], axis=1)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), tile=st.integers(1, 24), seed=st.integers(0, 9))
def test_tiles_with_the_reach_as_halo_give_the_whole_image(h, w, tile, seed):
    y = np.random.default_rng(seed).integers(-8, 9, size=(1, h, w, 2)).astype(np.float64)
    assert np.array_equal(synthesis_tiled(_local, y, tile, REACH), _local(y))


def test_a_halo_short_of_the_reach_shows():
    y = np.random.default_rng(1).integers(-8, 9, size=(1, 30, 30, 2)).astype(np.float64)
    assert not np.array_equal(synthesis_tiled(_local, y, 10, REACH - 1), _local(y))


def test_one_tile_is_one_call():
    calls = []

    def counted(y):
        calls.append(y.shape)
        return _local(y)

    synthesis_tiled(counted, np.zeros((1, 12, 20, 2)), tile=20)
    assert calls == [(1, 12, 20, 2)]
    synthesis_tiled(counted, np.zeros((1, 12, 41, 2)), tile=20)
    assert len(calls) == 1 + 3  # 41 columns in three near-equal spans


def test_real_g_s_in_tiles_matches_the_whole_image(codec, kodim23):
    """The shipped g_s (torch) in tiles of 16 latent cells against one call: the float
    outputs differ only by convolution rounding, the pixels by at most one level."""
    from textboost.codec.exact import LATENT_FRAC

    img = kodim23[:384, :640]
    _, y_q = codec.decode_latents(codec.encode(img, rate=0.3))
    y = y_q * 2.0**-LATENT_FRAC
    whole = codec.transforms.synthesis(y)
    tiled = synthesis_tiled(codec.transforms.synthesis, y, tile=16)
    assert tiled.shape == whole.shape
    assert np.abs(tiled - whole).max() < 1e-4

    def u8(x):
        return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.int16)

    d = np.abs(u8(tiled) - u8(whole))
    assert d.max() <= 1 and np.count_nonzero(d) <= 1e-4 * d.size
