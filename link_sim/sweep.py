"""Parameter sweeps on worker processes or a Ray cluster, each point carrying what it needs
by value, so a worker on another machine needs only the installed package.

A point is the resolved scenario itself (not a path to a YAML file the worker may not
have), its run count and codec kind. The encoded streams the points use are made once for
the whole sweep on the driver: every distinct (image, rate setting, text setting) is
encoded once (through the driver's encode cache) and, on Ray, put once in the object store;
each point's task takes the references of the streams it uses and seeds a local encode
cache with them, so no worker encodes again. Images of a folder set (not shipped with the
package) travel the same way, once, with their ground-truth files. On a process pool the
workers share the driver's cache folder instead.

An ``adaptive`` rate policy picks each image's budget during the run, so its streams
cannot be made beforehand: those points encode on their workers (``encodes`` in each
point's result says how many).
"""

from __future__ import annotations

import multiprocessing
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from link_sim.codec_service import CodecService
from link_sim.report import summarize
from link_sim.scenario import Scenario, ScenarioError, image_paths
from uplink.cache import EncodeCache, file_sha256
from uplink.encode import EncodePipeline

__all__ = ["StreamKey", "SweepPoint", "plan_streams", "run_point", "run_points"]

# (image SHA-256, encode settings, model id): the encode cache's key
StreamKey = tuple[str, str, bytes]
Stream = tuple[str, str, bytes, bytes]  # the key and the `.tbx` bytes


@dataclass(slots=True)
class SweepPoint:
    overrides: dict[str, str]
    scenario: Scenario  # resolved: overrides applied, image folder absolute
    runs: int
    synthetic: bool
    streams: list[StreamKey] = field(default_factory=list)  # made on the driver
    cache_dir: str | None = None  # a cache folder the worker shares (None: its own)


def _used_images(s: Scenario) -> list[Path]:
    paths = image_paths(s)
    n = min(s.images.capture.count, len(paths))
    return [paths[i % len(paths)] for i in range(n)]


def plan_streams(
    points: list[SweepPoint], codec: CodecService, progress: bool = False
) -> dict[StreamKey, bytes]:
    """Encode every distinct stream the points use, once (``codec.encodes`` counts the
    encoder runs; the rest came from the cache), and list each point's keys in it."""
    streams: dict[StreamKey, bytes] = {}
    jobs = []
    for p in points:
        policy = p.scenario.rate.fixed_policy()
        if policy is None:
            continue  # adaptive: budgets are chosen during the run
        for path in _used_images(p.scenario):
            jobs.append((p, path, policy))
    shas: dict[Path, str] = {}
    for p, path, policy in tqdm(jobs, unit="image", leave=False, desc="encode",
                                disable=not progress or None):  # fmt: skip
        text, name = p.scenario.text_path, p.scenario.send_name
        pipe = EncodePipeline(policy, None, codec.loader, text=text, name=name)
        _, settings = pipe.record_and_key(path)
        if path not in shas:
            shas[path] = file_sha256(path)
        key = (shas[path], settings, codec.model_id)
        if key not in streams:
            try:
                streams[key] = codec.encode(path, policy, text=text, name=name)
            except ValueError:  # BudgetError: the point's mission drops it the same way
                continue
        if key not in p.streams:
            p.streams.append(key)
    return streams


def _sources(s: Scenario) -> dict[str, bytes] | None:
    """The files of a folder image set (images and ``gt_<stem>.txt``), None for a set
    shipped with the package."""
    if s.images.set is not None:
        return None
    files: dict[str, bytes] = {}
    for path in image_paths(s):
        files[path.name] = path.read_bytes()
        gt = path.with_name(f"gt_{path.stem}.txt")
        if gt.is_file():
            files[gt.name] = gt.read_bytes()
    return files


def run_point(
    point: SweepPoint, sources: dict[str, bytes] | None, *streams: Stream
) -> dict[str, Any]:
    """One sweep point on whatever worker runs it: seed the encode cache with the streams,
    lay out the images that travelled, run the scenario."""
    from link_sim.runner import run_scenario

    with tempfile.TemporaryDirectory(prefix="textboost-sweep-") as tmp:
        cache = Path(point.cache_dir) if point.cache_dir else Path(tmp) / "cache"
        enc = EncodeCache(cache / "encoded")
        for sha, settings, model_id, data in streams:
            enc.put(sha, settings, model_id, data)
        scenario = point.scenario
        if sources is not None:
            folder = Path(tmp) / "images"
            folder.mkdir()
            for name, data in sources.items():
                (folder / name).write_bytes(data)
            images = scenario.images.model_copy(update={"folder": str(folder)})
            scenario = scenario.model_copy(update={"images": images})
        codec = CodecService(cache, synthetic=point.synthetic)
        results = run_scenario(scenario, codec, point.runs, progress=False)
        return {"overrides": point.overrides, "summary": summarize(results),
                "encodes": codec.encodes}  # fmt: skip


def run_points(
    points: list[SweepPoint],
    codec: CodecService,
    *,
    workers: int,
    ray_address: str | None,
    on_point: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Run the points (results in the points' order) and return them with the number of
    encoder runs on the driver."""
    before = codec.encodes
    streams = plan_streams(points, codec, progress=True)
    driver_encodes = codec.encodes - before
    if ray_address is not None:
        results = _on_ray(ray_address, points, streams)
    else:
        for p in points:
            p.cache_dir = str(codec.cache_dir)  # the streams are in its encode cache
        # spawn, not fork: the parent may hold BLAS/torch threads, which fork can deadlock
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(run_point, p, None) for p in points]
            results = []
            for f in tqdm(futures, unit="point", leave=False, desc="sweep", disable=None):
                results.append(f.result())
                if on_point:
                    on_point(results[-1])
    return results, driver_encodes


def _on_ray(
    address: str, points: list[SweepPoint], streams: dict[StreamKey, bytes]
) -> list[dict[str, Any]]:
    try:
        import ray
    except ImportError:
        raise ScenarioError(
            "--ray needs the optional 'ray' package: pip install 'textboost-link[cluster]' "
            "(or pip install ray), then pass the cluster address, e.g. --ray auto"
        ) from None
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    refs = {k: ray.put((*k, data)) for k, data in streams.items()}  # once per stream
    sources: dict[str, Any] = {}
    for p in points:
        folder = str(p.scenario.images.folder)
        if p.scenario.images.set is None and folder not in sources:
            sources[folder] = ray.put(_sources(p.scenario))
    task = ray.remote(run_point)
    futures = [
        task.remote(p, sources.get(str(p.scenario.images.folder)),
                    *(refs[k] for k in p.streams if k in refs))
        for p in points
    ]
    return ray.get(futures)
