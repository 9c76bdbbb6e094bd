"""Receiver cost of the word fusion block against the paper's whole-image block.

    OMP_NUM_THREADS=1 python benchmarks/word_fusion_speed.py [--words 12] [--size 1024x768]
        [--fusion FILE] [--threads 1]

A decoded-like image of the given size with N words of 10–30 px height spread over it
(the carried words of a busy street photo), torch CPU. Prints the tiles, the pixels the
block runs on (share of the image), process CPU time and wall time per image for the word
block (``--fusion``'s file, else an untrained block of ``--channels``) on torch and on ONNX
Runtime (the graph ``python -m export onnx`` writes, exported here to a temporary folder)
and the paper's block over the whole image on torch, and the load average: the machine
is shared, so CPU time is the figure to compare.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from textboost.fusion.model import FusionBlock
from textboost.fusion.regions import word_tiles
from textboost.fusion.runtime import fuse
from textboost.fusion.word_block import WordFusionNet
from textboost.text.words import Word, rect_quad


def _words(n: int, w: int, h: int, seed: int = 0) -> list[Word]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        hh = float(rng.uniform(10, 30))
        ww = hh * float(rng.uniform(2, 7))
        cx, cy = rng.uniform(ww / 2, w - ww / 2), rng.uniform(hh, h - hh)
        out.append(Word(rect_quad(cx, cy, ww, hh, float(rng.normal(0, 0.1))), "WORD12"))
    return out


_ONNX = {}


def _onnx(block, threads: int):
    """The block as ``python -m export onnx`` exports it, on ONNX Runtime (built once)."""
    if "f" not in _ONNX:
        import tempfile

        from export.onnx import DEFAULT_OPSET, _export
        from textboost.codec.exported import ort_session
        from textboost.fusion.exported import OnnxFusion
        from textboost.fusion.word_inputs import INPUT_CHANNELS

        path = Path(tempfile.mkdtemp()) / "fusion.onnx"
        axes = {"x": {2: "H", 3: "W"}, "g": {2: "H", 3: "W"}, "fused": {2: "H", 3: "W"}}
        args = (torch.rand(1, 3, 64, 96), torch.rand(1, INPUT_CHANNELS, 64, 96))
        _export(block, args, path, ["x", "g"], ["fused"], axes, DEFAULT_OPSET)
        sess = ort_session(path, ["CPUExecutionProvider"], threads=threads)
        _ONNX["f"] = OnnxFusion.from_session(sess, kind="words")
    return _ONNX["f"]


def _time(fn, repeat: int) -> tuple[float, float]:
    fn()  # warm-up
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.process_time() - c0) / repeat, (time.perf_counter() - t0) / repeat


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--words", type=int, default=12)
    p.add_argument("--size", default="1024x768")
    p.add_argument("--channels", default="16,32")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--fusion", default=None, help="a word block weights file")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    torch.set_num_threads(a.threads)
    img = np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)
    words = _words(a.words, w, h)
    tiles = word_tiles(words, w, h)
    px = sum(t.shape[0] * t.shape[1] for t in tiles)
    if a.fusion:
        from textboost.fusion.runtime import load_fusion

        block = load_fusion(a.fusion)
    else:
        block = WordFusionNet(tuple(int(c) for c in a.channels.split(","))).eval()
    paper = FusionBlock().eval()
    cw, ww = _time(lambda: fuse(block, img, words), a.repeat)
    cp, wp = _time(lambda: fuse(paper, img, words), max(1, a.repeat // 2))
    co, wo = _time(lambda: _onnx(block, a.threads).fuse_words(img, words), a.repeat)
    n_par = sum(p.numel() for p in block.parameters())
    print(f"image {w}x{h}, {len(words)} words, {len(tiles)} tiles, {px} px "
          f"({100 * px / (w * h):.1f} % of the image), torch threads {torch.get_num_threads()}")
    print(f"word block {block.channels} ({n_par} parameters): CPU {cw:.3f} s, wall {ww:.3f} s")
    print(f"word block on ONNX Runtime ({a.threads} thread): CPU {co:.3f} s, wall {wo:.3f} s")
    print(f"paper block, whole image: CPU {cp:.3f} s, wall {wp:.3f} s")
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"word / paper CPU time: {cw / cp:.2f}; load average {' '.join(load)}")


if __name__ == "__main__":
    main()
