"""The same link_sim sweep on the process pool and on a local two-node Ray cluster (a head
and a worker node, ``ray.cluster_utils.Cluster``): wall time and encoder runs in each.
Each encode cache starts empty, so every distinct stream is encoded once, on the driver;
``worker encodes`` counts what the points' workers encoded on their own (0 unless the rate
policy is adaptive). Prints figures; asserts nothing.

    python benchmarks/sweep_cluster.py [--real] [--scenario FILE] [--param A=1,2 ...]
        [--workers 2] [--ray-address ADDRESS]   # an existing cluster instead of a local one
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

# a local cluster on loopback only (Ray would advertise the machine's own address)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from link_sim.codec_service import CodecService
from link_sim.runner import parse_params, run_sweep

DEFAULT_PARAMS = ["link.forward.rate_bps=600,1200,2400,4800", "seed=1,2"]


def sweep(args, params, cache: Path, out: Path, ray_address: str | None) -> dict:
    codec = CodecService(cache, synthetic=not args.real)
    t0, c0 = time.perf_counter(), time.process_time()
    points, _ = run_sweep(
        args.scenario, params, runs=args.runs, cache_dir=cache, synthetic=not args.real,
        workers=args.workers, ray_address=ray_address, out_dir=out, codec=codec,
    )  # fmt: skip
    return {
        "wall_s": time.perf_counter() - t0, "driver_cpu_s": time.process_time() - c0,
        "points": len(points), "driver_encodes": codec.encodes,
        "worker_encodes": sum(p["encodes"] for p in points),
        "summaries": [p["summary"] for p in points],
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="scenarios/rescue.yaml")
    p.add_argument("--param", action="append", help=f"default: {' '.join(DEFAULT_PARAMS)}")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--real", action="store_true", help="the real codec (default: synthetic)")
    p.add_argument("--ray-address", help="an existing cluster (default: start a local one)")
    args = p.parse_args()
    params = parse_params(args.param or DEFAULT_PARAMS)
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pool = sweep(args, params, tmp / "cache_pool", tmp / "out_pool", None)
        cluster = None
        t0 = time.perf_counter()
        address = args.ray_address
        if address is None:
            from ray.cluster_utils import Cluster

            loopback = {"node_ip_address": "127.0.0.1"}  # not the machine's own address
            cluster = Cluster(initialize_head=True,
                              head_node_args={"num_cpus": args.workers, **loopback})
            cluster.add_node(num_cpus=args.workers, **loopback)
            cluster.wait_for_nodes()
            address = cluster.address
        local = {"_node_ip_address": "127.0.0.1"} if cluster is not None else {}
        ray.init(address=address, log_to_driver=False, **local)
        start_s = time.perf_counter() - t0
        nodes = len([n for n in ray.nodes() if n["Alive"]])
        try:
            on_ray = sweep(args, params, tmp / "cache_ray", tmp / "out_ray", address)
        finally:
            ray.shutdown()
            if cluster is not None:
                cluster.shutdown()
    codec = "real codec" if args.real else "synthetic payloads"
    print(f"{args.scenario}, {pool['points']} points x {args.runs} run(s), {codec}; "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'':28} {'wall s':>8} {'driver CPU s':>13} {'driver encodes':>15} "
          f"{'worker encodes':>15}")  # fmt: skip
    for name, r in (("process pool", pool), (f"Ray, {nodes} nodes", on_ray)):
        print(f"{name:28} {r['wall_s']:8.1f} {r['driver_cpu_s']:13.1f} "
              f"{r['driver_encodes']:15d} {r['worker_encodes']:15d}")  # fmt: skip
    print(f"Ray cluster start: {start_s:.1f} s; summaries equal: "
          f"{pool['summaries'] == on_ray['summaries']}")  # fmt: skip


if __name__ == "__main__":
    main()
