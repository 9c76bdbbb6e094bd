"""A sweep on a real multi-node Ray cluster on this machine (a head and a worker node, as
`ray start --head` and `ray start --address` would make) gives the process pool's results
for the same seeds, with every stream encoded once for the whole sweep."""

from __future__ import annotations

import os

import pytest

# a cluster on loopback only: without this Ray advertises the machine's own address
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402

from link_sim.codec_service import CodecService  # noqa: E402
from link_sim.runner import run_sweep  # noqa: E402
from tests.helpers import ROOT  # noqa: E402

LOOPBACK = {"node_ip_address": "127.0.0.1"}
PARAMS = [("link.forward.rate_bps", ["1200", "4800"]), ("seed", ["1", "2"])]


def _sweep(tmp_path, name, ray_address=None):
    codec = CodecService(tmp_path / f"cache_{name}", synthetic=True)
    points, _ = run_sweep(
        str(ROOT / "scenarios/rescue.yaml"), PARAMS, runs=1, cache_dir=codec.cache_dir,
        synthetic=True, workers=2, ray_address=ray_address, out_dir=tmp_path / name,
        codec=codec,
    )  # fmt: skip
    return points, codec


@pytest.mark.slow
def test_ray_cluster_sweep_equals_process_pool(tmp_path, monkeypatch):
    from ray._private import ray_constants

    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)  # if ray came in earlier
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, **LOOPBACK})
    try:
        cluster.add_node(num_cpus=1, **LOOPBACK)  # a second node: its own raylet and workers
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, _node_ip_address="127.0.0.1")
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        on_ray, ray_codec = _sweep(tmp_path, "ray", cluster.address)
    finally:
        ray.shutdown()
        cluster.shutdown()
    in_pool, pool_codec = _sweep(tmp_path, "pool")
    assert [p["overrides"] for p in on_ray] == [p["overrides"] for p in in_pool]
    assert [p["summary"] for p in on_ray] == [p["summary"] for p in in_pool]
    # the seeds and rates do change the figures: the comparison is not of constants
    assert len({str(p["summary"]["latency_mean_s"]) for p in in_pool}) > 1
    # rescue captures 10 photos from 6 images at one setting: 6 streams for 4 points, each
    # encoded once on the driver and never on a worker
    assert ray_codec.encodes == pool_codec.encodes == 6
    assert sum(p["encodes"] for p in on_ray) == sum(p["encodes"] for p in in_pool) == 0
