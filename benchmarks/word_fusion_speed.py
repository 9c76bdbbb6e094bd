"""Receiver cost of the word fusion block against the paper's whole-image block.

    OMP_NUM_THREADS=1 python benchmarks/word_fusion_speed.py [--words 12] [--size 1024x768]

A decoded-like image of the given size with N words of 10–30 px height spread over it
(the carried words of a busy street photo), torch CPU. Prints the tiles, the pixels the
block runs on (share of the image), process CPU time and wall time per image for the word
block (the shipped file's widths, or 16,32) and the paper's block over the whole image,
and the load average: the machine is shared, so CPU time is the figure to compare.
"""

from __future__ import annotations

import argparse
import os
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
    a = p.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    img = np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)
    words = _words(a.words, w, h)
    tiles = word_tiles(words, w, h)
    px = sum(t.shape[0] * t.shape[1] for t in tiles)
    block = WordFusionNet(tuple(int(c) for c in a.channels.split(","))).eval()
    paper = FusionBlock().eval()
    cw, ww = _time(lambda: fuse(block, img, words), a.repeat)
    cp, wp = _time(lambda: fuse(paper, img, words), max(1, a.repeat // 2))
    n_par = sum(p.numel() for p in block.parameters())
    print(f"image {w}x{h}, {len(words)} words, {len(tiles)} tiles, {px} px "
          f"({100 * px / (w * h):.1f} % of the image), torch threads {torch.get_num_threads()}")
    print(f"word block {block.channels} ({n_par} parameters): CPU {cw:.3f} s, wall {ww:.3f} s")
    print(f"paper block, whole image: CPU {cp:.3f} s, wall {wp:.3f} s")
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"word / paper CPU time: {cw / cp:.2f}; load average {' '.join(load)}")


if __name__ == "__main__":
    main()
