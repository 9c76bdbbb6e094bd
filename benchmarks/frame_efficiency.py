"""Protocol efficiency (section payload / on-air bytes) on a clean link, per frame format.

The figures of docs/protocol.md's efficiency table: one image split as header+text (4 %),
z (10 %) and five equal y groups, sent with ``arq="deferred"``, ``policy="fifo"`` (or the
one given) through a real Sender and Receiver (FIN back on the reverse link), counted from
the sender's byte counters (which tests/test_protocol_transfer.py checks against the bytes
on the wire).

    python benchmarks/frame_efficiency.py
    python benchmarks/frame_efficiency.py --policy words_first   # header+text: own segment
"""

from __future__ import annotations

import argparse

import numpy as np

from textboost.protocol import LinkConfig, Receiver, Sender

KEY = bytes(range(32))
LINKS = [
    ("LoRa SF12", dict(mtu_bytes=51, crc_bits=16)),
    ("LoRa SF12", dict(mtu_bytes=51, crc_bits=32)),
    ("generic", dict(mtu_bytes=256)),
    ("Iridium SBD MO", dict(mtu_bytes=340)),
    ("generic, one-way", dict(mtu_bytes=256, arq="none", fec_k=8, fec_m=2)),
    ("generic + HMAC (8 B tag)", dict(mtu_bytes=256, auth_key=KEY)),
    ("LoRa + HMAC (4 B tag)", dict(mtu_bytes=51, crc_bits=16, auth_key=KEY, tag_bytes=4)),
]
SIZES = (500, 1500, 4000)


def sections_of(total: int, rng: np.random.Generator) -> list[bytes]:
    head, z = round(0.04 * total), round(0.10 * total)
    y = (total - head - z) // 5
    sizes = [head, z] + [y] * 4 + [total - head - z - 4 * y]
    return [rng.bytes(n) for n in sizes]


def efficiency(cfg: LinkConfig, total: int, bundles: int = 3) -> tuple[float, int]:
    """Steady-state figure: several bundles in a row (the first pays the session's announce
    frame); returns (efficiency, frames per image)."""
    rng = np.random.default_rng(0)
    s, r = Sender(cfg, epoch=7), Receiver(cfg, epoch=9)
    frames = 0
    for b in range(bundles):
        s.submit(b, sections_of(total, rng), 0.0)
        for f in s.poll_transmit(0.0):
            frames += 1
            r.receive(f, 0.0)
        for f in r.poll_transmit(0.0):
            s.receive(f, 0.0)
    assert not s.active_bundles or cfg.arq == "none", "bundles not acknowledged"
    return s.stats.efficiency, round(frames / bundles)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy", default="fifo",
                    choices=("fifo", "priority_interleave", "words_first"))
    policy = ap.parse_args().policy
    print(f"policy {policy}")
    print(f"{'link':<26} {'MTU':>4} {'CRC':>4} {'FEC':>5} " + " ".join(
        f"{n:>6} B image" for n in SIZES
    ))
    for name, kw in LINKS:
        cfg = LinkConfig(**kw, policy=policy)
        fec = f"{cfg.fec_k}+{cfg.fec_m}" if cfg.fec else "-"
        cells = []
        for n in SIZES:
            e, k = efficiency(cfg, n)
            cells.append(f"{e:.3f} ({k:>3})")
        print(f"{name:<26} {cfg.mtu_bytes:>4} {cfg.crc_bits:>4} {fec:>5} " + " ".join(
            f"{c:>13}" for c in cells
        ))


if __name__ == "__main__":
    main()
