"""Run a scenario (once or Monte Carlo), write the report files, run sweeps in parallel."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from link_sim.codec_service import CodecService
from link_sim.html_report import write_html
from link_sim.mission import Mission
from link_sim.plots import plot_all, plot_sweep
from link_sim.records import MissionResult
from link_sim.report import report_dict, write_csv, write_json
from link_sim.scenario import Scenario, ScenarioError, image_paths, load_scenario
from link_sim.sweep import SweepPoint, run_points

__all__ = ["parse_params", "run_scenario", "run_sweep", "write_outputs"]


def run_scenario(
    scenario: Scenario, codec: CodecService, runs: int, *, progress: bool = True
) -> list[MissionResult]:
    """``runs`` missions with run indices 0..runs-1 (seeds from the scenario seed).

    With ``progress`` on a terminal: a bar of simulated seconds (one run) or of runs, whose
    note says what the codec is doing (the first run encodes, decodes and reads text)."""
    results = []
    if runs == 1:
        with tqdm(total=round(scenario.duration_s), unit="sim s", disable=not progress or None,
                  leave=False, desc=scenario.name) as bar:
            codec.activity = lambda what: bar.set_postfix_str(what)
            try:
                results.append(Mission(scenario, codec, 0).run(
                    lambda t: bar.update(round(t) - bar.n) if progress else None))
            finally:
                codec.activity = None
        return results
    with tqdm(range(runs), unit="run", disable=not progress or None, leave=False,
              desc=scenario.name) as bar:
        codec.activity = lambda what: bar.set_postfix_str(what)
        try:
            for k in bar:
                results.append(Mission(scenario, codec, k).run())
        finally:
            codec.activity = None
    return results


def write_outputs(
    results: list[MissionResult], scenario_file: str, out_dir: Path
) -> tuple[dict[str, Any], dict[str, Path]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    report = report_dict(results, scenario_file)
    files = {"json": out_dir / "report.json", "csv": out_dir / "images.csv"}
    write_json(report, files["json"])
    write_csv(report["images"], files["csv"])
    if len(results) > 1:
        files["runs_csv"] = out_dir / "runs.csv"
        write_csv(report["per_run"], files["runs_csv"])
    plots = plot_all(results, out_dir)
    originals = {p.name: p for p in image_paths(results[0].scenario)}
    files["html"] = out_dir / "report.html"
    write_html(report, plots, originals, files["html"])
    return report, files | plots


def parse_params(specs: list[str]) -> list[tuple[str, list[str]]]:
    """``["a.b=1,2"]`` → ``[("a.b", ["1", "2"])]``."""
    out = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not key or not values:
            raise ScenarioError(f"--param {spec!r}: expected dotted.path=value1,value2,...")
        out.append((key, values.split(",")))
    return out


def run_sweep(
    file: str,
    params: list[tuple[str, list[str]]],
    *,
    runs: int,
    cache_dir: Path,
    synthetic: bool,
    workers: int,
    ray_address: str | None,
    out_dir: Path,
    on_point: Callable[[dict[str, Any]], None] | None = None,
    codec: CodecService | None = None,
) -> tuple[list[dict[str, Any]], Path]:
    """Every combination of the parameter values, in worker processes or on Ray
    (:mod:`link_sim.sweep`: each point carries its resolved scenario and the streams it
    uses, encoded once for the whole sweep). Each point's result has ``encodes``: encoder
    runs on its worker; ``codec.encodes`` counts those on the driver."""
    keys = [k for k, _ in params]
    grid = [dict(zip(keys, combo, strict=True)) for combo in
            itertools.product(*(v for _, v in params))]
    # every point resolved (and so validated) before time is spent on any
    points = [SweepPoint(o, load_scenario(file, o), runs, synthetic) for o in grid]
    codec = codec or CodecService(cache_dir, synthetic=synthetic)
    results, _ = run_points(points, codec, workers=workers, ray_address=ray_address,
                            on_point=on_point)  # fmt: skip
    import yaml

    for p in results:
        p["value"] = yaml.safe_load(p["overrides"][keys[0]])
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_path = out_dir / f"sweep_{keys[0].replace('.', '_')}.png"
    plot_sweep(results, keys[0], plot_path)
    return results, plot_path
