"""The receiver's text path under hostile input: time and outcome per text section.

    python benchmarks/fuzz_text.py [--n 20000] [--seed 0] [--size 2048]

1. The word bomb of issue 22 (60 words of 255 characters, each rectangle covering a
   ``--size``² image) as a hostile sender writes it (a brotli version-0 section: the
   encoder writes raw version 2, the decoder still reads the older ones): its bytes and
   the renderer's time on it.
2. The worst a section can ask within the bounds: 255 words of 64 characters, each
   just under the per-word cap, at the size given; the renderer's time and the pixels
   it drew (at most the per-image budget).
3. ``--n`` mutations (byte flips, truncations, insertions, splices) of real sections
   (styled, coloured, rotated words): each goes through ``read_words`` and
   ``render_words`` as ``Pipeline.decode`` does (half the seeds are re-wrapped raw, so
   that mutations reach the fields rather than the decompressor); any exception is
   counted as a failure and printed. Each also goes, cut at a random byte, through
   ``read_prefix`` (the ground's first words, frame by frame): only ``BitstreamError``
   may come out. Reports the slowest case.
CPU time is process time (one thread).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import time
import traceback
import zlib

import brotli

from textboost.bitstream import BitstreamError
from textboost.text.payload import encode_words, read_prefix, read_words
from textboost.text.render import MAX_RENDER_PIXELS, render_words
from textboost.text.style import FACES, Style
from textboost.text.words import Word, rect_quad


def timed(fn):
    t0 = time.process_time()
    out = fn()
    return out, time.process_time() - t0


def seeds(rng: random.Random, w: int, h: int) -> list[bytes]:
    out = []
    for _ in range(32):
        words = []
        for _ in range(rng.randint(1, 12)):
            style = None
            if rng.random() < 0.7:
                col = rng.random() < 0.5
                style = Style(
                    face=rng.randrange(len(FACES)),
                    dark=rng.random() < 0.5,
                    inset=rng.randrange(16),
                    stretch=rng.randrange(16),
                    dx=rng.randrange(-8, 8),
                    dy=rng.randrange(-8, 8),
                    fg=(1, 2, 3) if col else None,
                    bg=(15, 14, 0) if col else None,
                )
            quad = rect_quad(
                rng.uniform(0, w),
                rng.uniform(0, h),
                rng.uniform(4, 400),
                rng.uniform(4, 60),
                rng.uniform(-math.pi, math.pi),
            )
            text = "".join(rng.choice("AB12 ÄŁ€\n\u2028km") for _ in range(rng.randint(1, 12)))
            words.append(Word(quad, text, rng.random(), style))
        data = encode_words(words, w, h)
        out.append(data)
        out.append(raw(data))  # mutations of a raw body reach the fields, not the codec
    return out


def raw(data: bytes) -> bytes:
    """A section re-wrapped with compression method 0 (raw body)."""
    method, body = data[0] & 3, data[1:]
    if method == 1:
        body = zlib.decompress(body, -15)
    elif method == 2:
        body = brotli.decompress(body)
    return bytes([data[0] & ~3]) + body


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(4)
        if op == 0 and b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            del b[rng.randrange(len(b)) :]
        elif op == 2:
            b[rng.randrange(len(b) + 1) : 0] = bytes(rng.randrange(256) for _ in range(4))
        else:
            other = rng.choice(pool)
            cut = rng.randrange(len(other) + 1)
            b = b[: rng.randrange(len(b) + 1)] + other[cut:]
    return bytes(b)


def bomb_section(size: int, n: int = 60) -> bytes:
    """n words of 255 characters covering the image, as a brotli version-0 section."""
    from textboost.bitstream.varint import varint, zigzag

    body = varint(n) + varint(size // 2) + b"\x00" * (n - 1)  # centre y, on a 1-px grid
    body += zigzag(size // 2) + b"\x00" * (n - 1)  # centre x
    body += (varint(size) * n) * 2 + b"\x00" * n + varint(255) * n
    body += b"W" * 255 * n
    bits = max(6, math.ceil(math.log2(size)))
    return bytes([2 | (bits - 6) << 4]) + brotli.compress(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=2048)
    args = ap.parse_args()
    s = args.size
    section = bomb_section(s)
    (words, _), t_dec = timed(lambda: read_words(section, s, s))
    g, t = timed(lambda: render_words(words, s, s))
    print(
        f"bomb: {len(section)}-byte section, {len(words)} words at {s}x{s}: decoded in "
        f"{1000 * t_dec:.1f} ms, rendered in {1000 * t:.1f} ms CPU, {len(g.dropped)} dropped"
    )
    side = int(math.sqrt((1 << 19) - 1))
    worst = [
        Word(rect_quad(side / 2 + i % 16, side / 2, side, side, 0.3), "W" * 64, 1.0, None)
        for i in range(255)
    ]
    g, t = timed(lambda: render_words(worst, s, s))
    drawn = sum(w.mask.size for w in g.words)
    print(
        f"worst within the bounds: 255 version-0 words of {side}² px at {s}x{s}: "
        f"{1000 * t:.0f} ms CPU, {drawn} px drawn (budget {MAX_RENDER_PIXELS}), "
        f"{len(g.words)} drawn, {len(g.dropped)} dropped"
    )
    rng = random.Random(args.seed)
    w, h = 640, 480
    pool = seeds(rng, w, h)
    failures, unreadable, drops, slow = 0, 0, 0, (0.0, b"")
    for _ in range(args.n):
        data = mutate(rng, rng.choice(pool), pool)
        t0 = time.process_time()
        try:
            words, problem = read_words(data, w, h)
            g = render_words(words, w, h)
            with contextlib.suppress(BitstreamError):
                read_prefix(data[: rng.randrange(len(data) + 1)], w, h)
        except Exception:  # the finding this benchmark exists to catch
            failures += 1
            print(f"FAIL on {data.hex()}:\n{traceback.format_exc()}")
            continue
        dt = time.process_time() - t0
        unreadable += problem is not None
        drops += len(g.dropped)
        if dt > slow[0]:
            slow = (dt, data)
    print(
        f"{args.n} mutated sections: {failures} exceptions, {unreadable} unreadable "
        f"(BitstreamError, picture kept), {drops} words dropped by the renderer; slowest "
        f"{1000 * slow[0]:.1f} ms CPU ({len(slow[1])} bytes)"
    )


if __name__ == "__main__":
    main()
