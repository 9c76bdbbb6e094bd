"""The capture record (with its source file name) under hostile input: outcome per record.

    python benchmarks/fuzz_capture.py [--n 200000] [--seed 0]

``--n`` inputs go through ``CaptureMeta.from_bytes`` and, inside a `.tbx` header with a
valid CRC, through ``Container.parse`` and ``Container.parse_head`` (what the ground reads as
the first section lands): random bytes with the name bit set, and mutations (byte flips,
truncations, insertions) of real records carrying names of 1..32 bytes of UTF-8 (ASCII,
accented, CJK, emoji, controls). Only ``MetaError`` / ``BitstreamError`` may come out; what
parses must re-encode to the same bytes. Prints counts, failures and the slowest input.
CPU time is process time (one thread).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import struct
import time
import traceback
import zlib
from datetime import datetime, timedelta, timezone

from textboost.bitstream.capture import MAX_NAME_BYTES, CaptureMeta, MetaError, fit_name
from textboost.bitstream.container import BitstreamError, Container, Header

ALPHABET = "abcXYZ019_-. éüøß漢字📷\x01\x1b\u202e"
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _record(rng: random.Random) -> bytes:
    name = fit_name("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 40))))
    kw = {"name": name}
    if rng.random() < 0.7:
        kw.update(time=T0 + timedelta(seconds=rng.randrange(1 << 30)))
    if rng.random() < 0.7:
        kw.update(lat=rng.uniform(-90, 90), lon=rng.uniform(-180, 180))
    if rng.random() < 0.3:
        kw.update(camera=rng.randrange(256))
    return CaptureMeta(**kw).to_bytes()


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        if op < 0.4 and b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif op < 0.7 and b:
            del b[rng.randrange(len(b)) :]
        else:
            b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
    return bytes(b)


def _in_header(meta: bytes) -> bytes:
    """A version-3 stream whose header carries ``meta`` under a valid CRC."""
    plain = Container(Header(model_id=b"TST1", width=64, height=48, rate=100, n_groups=1),
                      b"", b"z").to_bytes()  # fmt: skip
    at = 2 + 1 + 4 + 1 + 1 + 5  # magic, version, model id, width/height varints, 5 bytes
    head = bytearray(plain[:at]) + meta
    head[2] = 3
    return bytes(head) + struct.pack("<I", zlib.crc32(head)) + plain[at + 4 :]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    counts = {"parsed": 0, "refused": 0, "failures": 0, "named": 0, "streams": 0}
    slowest = (0.0, b"")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(args.n):
        if i % 2:
            data = _mutate(rng, _record(rng))
        else:
            data = bytes([0x20 | rng.randrange(64)]) + rng.randbytes(rng.randint(0, 40))
        t = time.perf_counter()
        try:
            try:
                meta = CaptureMeta.from_bytes(data)
                assert meta.to_bytes() == data, "parsed but re-encodes differently"
                counts["parsed"] += 1
                counts["named"] += meta.name is not None
                assert meta.name is None or len(meta.name.encode()) <= MAX_NAME_BYTES
            except MetaError:
                counts["refused"] += 1
            stream = _in_header(data)
            with contextlib.suppress(BitstreamError):
                got = Container.parse(stream).header.meta
                assert got == CaptureMeta.from_bytes(data), "header record differs"
                counts["streams"] += 1
            with contextlib.suppress(BitstreamError):
                Container.parse_head(stream)
        except Exception:  # any other exception is the finding
            counts["failures"] += 1
            print(f"FAIL input {data.hex()}")
            traceback.print_exc()
        dt = time.perf_counter() - t
        if dt > slowest[0]:
            slowest = (dt, data)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"{args.n} inputs: {counts['parsed']} parsed ({counts['named']} with a name), "
          f"{counts['refused']} refused with MetaError, {counts['streams']} parsed inside a "
          f"stream, {counts['failures']} failures")
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s; slowest {1e3 * slowest[0]:.2f} ms "
          f"({slowest[1].hex()})")


if __name__ == "__main__":
    main()
