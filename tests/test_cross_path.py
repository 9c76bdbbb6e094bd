"""Streams decode to identical latents across processes and thread counts.

The child process runs with one BLAS/OpenMP/torch thread, the parent with the default
two: the float transforms differ between them (that is allowed), the entropy
parameters must not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

CHILD = textwrap.dedent(
    """
    import sys, numpy as np, torch
    torch.set_num_threads(1)
    from textboost import Pipeline
    codec = Pipeline.load()
    img = np.load(sys.argv[1])
    an = codec.analyse(img)
    *_, y_enc = codec.codec.code_latents(an, 30000)
    open(sys.argv[2], "wb").write(codec.codec.encode_analysis(an, 30000))
    np.save(sys.argv[3], y_enc)
    _, y_dec = codec.codec.decode_latents(open(sys.argv[4], "rb").read())
    np.save(sys.argv[5], y_dec)
    """
)

@pytest.fixture(scope="module")
def codec(pipeline):
    """These tests exercise the method (words carried, fused decode): the pipeline."""
    return pipeline


def test_streams_cross_thread_counts_and_processes(codec, kodim23, tmp_path):
    img = kodim23[100:292, 200:456].copy()
    an = codec.analyse(img)
    *_, y_parent = codec.codec.code_latents(an, 50000)
    (tmp_path / "parent.tbx").write_bytes(codec.codec.encode_analysis(an, 50000))
    np.save(tmp_path / "img.npy", img)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    args = ["img.npy", "child.tbx", "y_child_enc.npy", "parent.tbx", "y_parent_dec.npy"]
    subprocess.run(
        [sys.executable, "-c", CHILD, *(str(tmp_path / a) for a in args)],
        env=env,
        check=True,
        timeout=300,
    )
    # parent stream decoded in the single-threaded child
    assert np.array_equal(np.load(tmp_path / "y_parent_dec.npy"), y_parent)
    # child stream decoded here
    _, y_here = codec.codec.decode_latents((tmp_path / "child.tbx").read_bytes())
    assert np.array_equal(y_here, np.load(tmp_path / "y_child_enc.npy"))
