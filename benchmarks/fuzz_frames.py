"""Coverage-guided fuzzing of the frame parser, the Receiver and Sender.receive with atheris.

    pip install -e '.[fuzz]'     # atheris (wheels for CPython 3.10-3.12 on Linux x86-64)
    python benchmarks/fuzz_frames.py --runs 1000000
    python benchmarks/fuzz_frames.py --runs 200000 -- -max_len=300   # extra libFuzzer flags
    python benchmarks/fuzz_frames.py --runs 1000000 --fec-only       # the FEC links alone

Every input picks a link configuration (with or without a key, CRC-16 or CRC-32, FEC on
with each ARQ mode, or off) and one of five shapes: raw bytes; a compact header built from
the input's fields and sealed with a valid FCS and tag (what an insider holding the key
could send: it reaches every parser past the checks); a real frame of a recorded session
with a few bytes changed and re-sealed; the recorded session's frames replayed in an order
the input chooses; or a frame of any kind (DATA PARITY EOF NAK FIN HELLO) encoded from
the input's fields and payload, PARITY and NAK/FIN payloads often with a well-formed prefix
(parity index and group size; the echoed epoch), or a NAK of packet numbers (the echoed
epoch, then a range with the segment byte ``PN_SEGMENT``, start and count of the input's
choosing), before bytes of any length. The
bytes go to ``decode_frame`` (may raise only ``ProtocolError``), to a long-lived
``Receiver`` and ``Sender`` per configuration, a receiver that never got a HELLO (its
store of held short frames is exercised) and, for frames of any kind, a new receiver that
got only the HELLO (no earlier group or bundle of the input's choosing in the way) (may raise
nothing), whose timers are fired
and whose NAKs are polled. Checked after each input: ``Receiver.memory_bytes`` within
``receiver_memory_bytes``, open bundles within ``max_open_bundles``, the drop log bounded;
per input no more than ``--slow-s`` seconds (a hang; libFuzzer's own ``-timeout`` also
applies). The Python heap is sampled every ``--sample`` inputs (tracemalloc with
``--tracemalloc``, else the interpreter's allocated blocks): its growth over the run is
printed and must stay under ``--max-growth-mb``.

Prints inputs run, wall time and CPU time, the load average, the slowest input, the
tracemalloc peak and growth, the structured frames made per kind and link, and each end's
drop counters. Exit status 0 when every check held (libFuzzer reports a crash with the
input that caused it, in a ``crash-*`` file).
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import struct
import sys
import time
import tracemalloc
from pathlib import Path

try:
    import atheris
except ImportError:  # pragma: no cover - a benchmark-only dependency
    sys.exit("atheris is not installed: pip install -e '.[fuzz]' (see pyproject.toml)")

with atheris.instrument_imports(include=["textboost.protocol"]):  # coverage of these only
    from textboost.bitstream.varint import varint
    from textboost.protocol import (
        Frame,
        FrameType,
        LinkConfig,
        ProtocolError,
        Receiver,
        Sender,
        decode_frame,
        encode_frame,
    )
    from textboost.protocol.frames import PN_SEGMENT, Flag, seal

KEY = bytes(range(32))
CONFIGS = [
    LinkConfig(mtu_bytes=96, max_bundle_bytes=4096, receiver_memory_bytes=16384),
    LinkConfig(mtu_bytes=96, auth_key=KEY, max_bundle_bytes=4096, receiver_memory_bytes=16384),
    LinkConfig(mtu_bytes=51, crc_bits=16, arq="immediate", max_bundle_bytes=4096,
               receiver_memory_bytes=16384, nak_timeout_s=1.0),
    LinkConfig(mtu_bytes=128, fec_k=3, fec_m=1, arq="none", max_bundle_bytes=4096,
               receiver_memory_bytes=16384),
    LinkConfig(mtu_bytes=96, fec_k=2, fec_m=2, auth_key=KEY, max_bundle_bytes=4096,
               receiver_memory_bytes=16384),
    LinkConfig(mtu_bytes=64, fec_k=4, fec_m=1, crc_bits=16, arq="immediate",
               max_bundle_bytes=4096, receiver_memory_bytes=16384, nak_timeout_s=1.0),
]
KINDS = list(FrameType)
LABELS = [t.name for t in KINDS] + ["NAK of packet numbers"]
RESET_EVERY = 20_000  # fresh ends now and then, so no input depends on a very old state


def _session(cfg: LinkConfig) -> list[bytes]:
    """A real exchange's forward frames (HELLO, DATA, PARITY, EOF), for mutation."""
    s, r = Sender(cfg, epoch=4), Receiver(cfg, epoch=8)
    s.submit(0, [b"h" * 30, b"z" * 150, b"y" * 400], 0.0)
    s.submit(1, [b"q" * 90], 0.0)
    frames = s.poll_transmit(0.0)
    for f in frames:
        r.receive(f, 0.0)
    return frames


SESSIONS = [_session(cfg) for cfg in CONFIGS]


class State:
    def __init__(self, runs: int, slow_s: float, sample: int) -> None:
        self.runs, self.slow_s, self.sample = runs, slow_s, sample
        self.n = 0
        self.t0 = time.perf_counter()
        self.slowest = 0.0
        self.heap: list[tuple[int, int]] = []  # (input, traced bytes)
        self.max_held = [0] * len(CONFIGS)  # most fragment bytes a receiver held at once
        self.kinds = [[0] * len(LABELS) for _ in CONFIGS]  # structured frames made, per kind
        self.cpu0 = time.process_time()
        self.structured = False  # the current input is a frame of shape 4
        self.fresh()

    def fresh(self) -> None:
        self.pn = 1 << 20  # structured frames' packet numbers: above the recorded sessions'
        self.ends = [(Receiver(cfg, epoch=8), Sender(cfg, epoch=4)) for cfg in CONFIGS]
        for (r, s), frames in zip(self.ends, SESSIONS, strict=True):
            r.receive(frames[0], 0.0)  # the HELLO: short-form headers decode from here on
            s.submit(0, [b"x" * 100], 0.0)
            s.poll_transmit(0.0)
        # and receivers that never saw a HELLO: short frames wait in their held store
        self.cold = [Receiver(cfg, epoch=9) for cfg in CONFIGS]


def structured(fdp: atheris.FuzzedDataProvider, cfg: LinkConfig, pn: int) -> tuple[int, bytes]:
    """A frame of any kind from the input's fields, as a sender (or an insider) encodes it:
    (index in LABELS, bytes); a PARITY or NAK/FIN payload usually opens with a well-formed
    prefix, a NAK of packet numbers with the epoch and one packet-number range."""
    kind = fdp.ConsumeIntInRange(0, len(LABELS) - 1)
    ftype = KINDS[kind] if kind < len(KINDS) else FrameType.NAK
    prefix = b""
    if kind == len(KINDS):  # numbers near the ends' own (below 64) or anywhere
        start = fdp.ConsumeIntInRange(0, 64 if fdp.ConsumeBool() else 1 << 33)
        count = fdp.ConsumeIntInRange(0, 64 if fdp.ConsumeBool() else 1 << 17)
        prefix = (4).to_bytes(4, "big") + bytes([PN_SEGMENT]) + varint(start) + varint(count)
    elif fdp.ConsumeBool():
        if ftype is FrameType.PARITY:
            prefix = bytes([fdp.ConsumeIntInRange(0, 2), fdp.ConsumeIntInRange(1, 5)])
        elif ftype in (FrameType.NAK, FrameType.FIN):
            prefix = (4).to_bytes(4, "big")  # the sender's epoch, echoed
    # room after the longest header (18 bytes), the tag and the FCS
    room = cfg.mtu_bytes - 18 - (cfg.tag_bytes if cfg.auth_key else 0) - cfg.crc_bytes
    n = fdp.ConsumeIntInRange(0, 8) if fdp.ConsumeBool() else fdp.ConsumeIntInRange(0, room)
    payload = (prefix + fdp.ConsumeBytes(n))[:room]  # short ones often: rows below a prefix
    frame = Frame(
        type=ftype,
        bundle_id=fdp.ConsumeIntInRange(0, 3),
        segment=fdp.ConsumeIntInRange(0, 3),
        index=fdp.PickValueInList([0, 1, 2, 3, 4, 5, 127, 128, 32767]),
        flags=Flag(fdp.ConsumeIntInRange(0, 3)),
        payload=payload,
        epoch=4,
        pn=pn,
    )
    return kind, encode_frame(frame, cfg, long=ftype is FrameType.HELLO or fdp.ConsumeBool())


def build(fdp: atheris.FuzzedDataProvider, k: int, state: State) -> list[bytes]:
    cfg = CONFIGS[k]
    shape = fdp.ConsumeIntInRange(0, 4)
    state.structured = shape == 4
    if shape == 4:  # a frame of any kind, fields and payload from the input
        state.pn += 1
        kind, data = structured(fdp, cfg, state.pn)
        state.kinds[k][kind] += 1
        return [data]
    if shape == 0:  # raw bytes
        return [fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, cfg.mtu_bytes + 8))]
    if shape == 1:  # a compact header of the input's choosing, sealed
        byte0 = fdp.ConsumeIntInRange(0, 255)
        epoch = fdp.ConsumeIntInRange(0, 0xFFFF_FFFF)
        pn = fdp.ConsumeIntInRange(0, 0xFFFF_FFFF)
        if byte0 & 0x04:
            kid = b"\0" if byte0 & 0x02 else b""
            head = struct.pack(">I", epoch) + kid + struct.pack(">I", pn)
        else:
            head, epoch, pn = struct.pack(">H", pn & 0xFFFF), 8, pn & 0xFFFF
        rest = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, cfg.mtu_bytes))
        body = bytes([byte0]) + head + rest
        return [seal(body, cfg, *((None, None) if byte0 & 0x04 else (4, pn)))]
    frames = SESSIONS[k]
    if shape == 2:  # a real frame, mutated, re-sealed (or not)
        f = bytearray(frames[fdp.ConsumeIntInRange(0, len(frames) - 1)])
        for _ in range(fdp.ConsumeIntInRange(1, 4)):
            f[fdp.ConsumeIntInRange(0, len(f) - 1)] = fdp.ConsumeIntInRange(0, 255)
        if fdp.ConsumeBool():
            body = bytes(f[: -cfg.crc_bytes - (cfg.tag_bytes if cfg.auth_key else 0)])
            try:
                return [seal(body, cfg)]
            except ProtocolError:
                return [seal(body, cfg, 4, int.from_bytes(body[1:3].ljust(2, b"\0"), "big"))]
        return [bytes(f)]
    order = [fdp.ConsumeIntInRange(0, len(frames) - 1) for _ in range(fdp.ConsumeIntInRange(1, 8))]
    return [frames[i] for i in order]  # replayed, reordered


def make_target(state: State):
    def one_input(data: bytes) -> None:
        t = time.perf_counter()
        fdp = atheris.FuzzedDataProvider(data)
        k = fdp.ConsumeIntInRange(0, len(CONFIGS) - 1)
        cfg = CONFIGS[k]
        r, s = state.ends[k]
        now = float(state.n)
        frames = build(fdp, k, state)
        if state.structured:  # also to a new receiver: no earlier group or bundle in the way
            blank = Receiver(cfg, epoch=9)
            blank.receive(SESSIONS[k][0], now)
            for frame in frames:
                blank.receive(frame, now)
            blank.poll_transmit(now)
            blank.handle_timeout(now + 1e6)
            if not 0 <= blank.memory_bytes <= cfg.receiver_memory_bytes:
                raise AssertionError(f"new receiver holds {blank.memory_bytes} bytes")
        for frame in frames:
            with contextlib.suppress(ProtocolError):
                decode_frame(frame, cfg, r.replay_state)
            r.receive(frame, now)
            s.receive(frame, now)
            state.cold[k].receive(frame, now)
        r.poll_transmit(now)
        r.handle_timeout(now + 1e6 * fdp.ConsumeBool())
        s.handle_timeout(now)
        state.max_held[k] = max(state.max_held[k], r.memory_bytes)
        if r.memory_bytes > cfg.receiver_memory_bytes or r.memory_bytes < 0:
            raise AssertionError(f"receiver holds {r.memory_bytes} bytes")
        if len(r._bundles) > r.max_open_bundles + 1:
            raise AssertionError(f"{len(r._bundles)} bundles open")
        if len(r._drops) > 1024 or len(s._drops) > 1024:
            raise AssertionError("drop log unbounded")
        cold = state.cold[k]
        if len(cold._unsynced) > 32 or cold.memory_bytes > cfg.receiver_memory_bytes:
            raise AssertionError(f"cold receiver holds {len(cold._unsynced)} frames")
        dt = time.perf_counter() - t
        state.slowest = max(state.slowest, dt)
        if dt > state.slow_s:
            raise AssertionError(f"one input took {dt:.3f} s (a hang)")
        state.n += 1
        if state.n % state.sample == 0:
            state.heap.append((state.n, heap_bytes()))
            print(f"  {state.n:>9,} inputs, {time.perf_counter() - state.t0:7.1f} s, "
                  f"heap {state.heap[-1][1] / 1e6:.2f} MB", file=sys.stderr, flush=True)
        if state.n == state.runs:
            report(state)
        elif state.n % RESET_EVERY == 0:
            state.fresh()

    return one_input


def heap_bytes() -> int:
    """Python heap in use: traced bytes with ``--tracemalloc``, else allocated blocks x 64
    (an estimate, but free of tracemalloc's slowdown; growth is what matters)."""
    if tracemalloc.is_tracing():
        return tracemalloc.get_traced_memory()[0]
    return sys.getallocatedblocks() * 64


def report(state: State) -> None:
    wall = time.perf_counter() - state.t0
    heap = state.heap or [(state.n, heap_bytes())]
    growth = (heap[-1][1] - heap[0][1]) / 1e6
    cpu = time.process_time() - state.cpu0
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"inputs run: {state.n:,} in {wall:.1f} s wall, {cpu:.1f} s CPU "
          f"({state.n / wall:,.0f} per s); slowest input {state.slowest * 1e3:.1f} ms; "
          f"load average {load}")
    how = "tracemalloc" if tracemalloc.is_tracing() else "allocated blocks x 64 B"
    peak = f"peak {tracemalloc.get_traced_memory()[1] / 1e6:.2f} MB, " if how[0] == "t" else ""
    print(f"python heap ({how}): {peak}growth from input {heap[0][0]:,} to {heap[-1][0]:,}: "
          f"{growth:+.2f} MB; max RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    for cfg, (r, _), held, kinds in zip(CONFIGS, state.ends, state.max_held, state.kinds,
                                         strict=True):  # fmt: skip
        drops = {k.removeprefix("dropped_"): v for k, v in vars_of(r.stats).items()
                 if k.startswith("dropped_") and v}
        made = ", ".join(f"{t} {n:,}" for t, n in zip(LABELS, kinds, strict=True))
        print(f"  mtu {cfg.mtu_bytes} crc {cfg.crc_bits} key {cfg.auth_key is not None} "
              f"fec {cfg.fec_k}+{cfg.fec_m} arq {cfg.arq}: structured frames {made}; "
              f"receiver (since last reset) drops {drops}, "
              f"held at most {held} B of {cfg.receiver_memory_bytes}")
    if growth > state.max_growth_mb:
        print(f"FAIL: heap grew {growth:.2f} MB > {state.max_growth_mb} MB")
        sys.stdout.flush()
        raise SystemExit(1)
    sys.stdout.flush()


def vars_of(obj) -> dict[str, int]:
    return {k: getattr(obj, k) for k in obj.__slots__}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1_000_000)
    p.add_argument("--slow-s", type=float, default=2.0, help="one input longer than this: fail")
    p.add_argument("--sample", type=int, default=100_000, help="heap sample every N inputs")
    p.add_argument("--max-growth-mb", type=float, default=8.0)
    p.add_argument("--tracemalloc", action="store_true",
                   help="measure the heap with tracemalloc (exact, about 2x slower)")
    p.add_argument("--fec-only", action="store_true", help="only the links with FEC on")
    args, rest = p.parse_known_args()
    if args.fec_only:
        keep = [i for i, cfg in enumerate(CONFIGS) if cfg.fec]
        CONFIGS[:], SESSIONS[:] = [CONFIGS[i] for i in keep], [SESSIONS[i] for i in keep]
    state = State(args.runs, args.slow_s, args.sample)
    state.max_growth_mb = args.max_growth_mb
    if args.tracemalloc:
        tracemalloc.start()
    libfuzzer = [sys.argv[0], f"-runs={args.runs}", "-timeout=10", "-rss_limit_mb=4096",
                 *[a for a in rest if a != "--"]]
    atheris.Setup(libfuzzer, make_target(state))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
