"""Pushes per second into the edge's store-and-forward queue with a long backlog.

    python benchmarks/edge_queue_push.py [--queued 10000 100000] [--window 1000]

For each ``--queued`` N: a queue large enough that nothing is dropped is filled with N
images of 64 bytes through ``StoreAndForward.push``; the figure is the rate of the last
``--window`` pushes (N - window queued before them), wall and CPU time (process time, one
thread), and the time to fill the whole queue. A push that sums the backlog costs O(N), so
filling costs O(N²); one that keeps a running total costs O(1).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from uplink.store import StoreAndForward, StoredImage

SIZE_BYTES = 64


def fill(n: int, window: int) -> dict[str, float]:
    """Fill a queue with ``n`` images; the seconds of the whole fill and of the last pushes."""
    store = StoreAndForward(capacity_bytes=SIZE_BYTES * n + 1)
    data = bytes(SIZE_BYTES)
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(n - window):
        store.push(StoredImage(f"img{i}", data, float(i)))
    w1, c1 = time.perf_counter(), time.process_time()
    for i in range(n - window, n):
        store.push(StoredImage(f"img{i}", data, float(i)))
    w2, c2 = time.perf_counter(), time.process_time()
    if len(store.waiting) != n or store.dropped:
        raise RuntimeError(f"expected {n} queued and none dropped")
    return {
        "fill_wall_s": w2 - w0,
        "fill_cpu_s": c2 - c0,
        "window_wall_s": w2 - w1,
        "window_cpu_s": c2 - c1,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queued", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--window", type=int, default=1000, help="pushes timed at the end")
    args = ap.parse_args()
    for n in args.queued:
        window = min(args.window, n)
        r = fill(n, window)
        print(
            f"{n:>7} queued: {window / r['window_wall_s']:>10.0f} pushes/s wall, "
            f"{window / max(r['window_cpu_s'], 1e-9):>10.0f} pushes/s CPU "
            f"(last {window} pushes); whole fill {r['fill_wall_s']:.2f} s wall, "
            f"{r['fill_cpu_s']:.2f} s CPU",
            flush=True,
        )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, shared with other jobs; "
        f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
