"""A training run's folder, as the stage-1 and stage-2 trainers keep it, so that the same
command continues where the last one stopped.

- The checkpoint is a plain dict given to ``torch.save``: ``model``, ``optimizer``, ``step``,
  ``numpy_rng``, ``torch_rng`` and the trainer's own keys. It is written to a ``.tmp`` file
  and renamed, so a run killed while saving leaves the previous checkpoint whole.
- ``config.yaml``: the settings the run was started with; ``status.json``: where it stopped.
- CSV logs are appended to, the header written only into a new file, each row flushed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

__all__ = [
    "csv_log",
    "load_checkpoint",
    "open_run",
    "restore_rngs",
    "rng_states",
    "save_checkpoint",
    "write_settings",
    "write_status",
]


def open_run(out_dir: str | Path, threads: int, seed: int) -> Path:
    """The run's folder (made if new), with torch on ``threads`` threads (0: torch's default)
    and seeded with ``seed``: call it before building the model, whose initial weights then
    follow from the settings."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    return out


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """``torch.save(state)`` to ``path`` through a temporary file, replaced in one step."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint saved by :func:`save_checkpoint`, on the CPU (it holds RNG states and
    config values besides tensors, hence not ``weights_only``)."""
    return torch.load(path, map_location="cpu", weights_only=False)


def rng_states(rng: np.random.Generator) -> dict[str, Any]:
    """The checkpoint's ``numpy_rng`` (the trainer's generator) and ``torch_rng`` entries."""
    return {"numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()}


def restore_rngs(state: dict[str, Any], rng: np.random.Generator) -> None:
    """Put back what :func:`rng_states` saved: a resumed run draws what a straight one does."""
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"])


def write_settings(out: Path, cfg: object) -> None:
    """``out/config.yaml``: the dataclass ``cfg``, its tuples written as lists."""
    plain = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}
    (out / "config.yaml").write_text(yaml.safe_dump(plain, sort_keys=False))


def write_status(out: Path, status: dict[str, Any]) -> None:
    """``out/status.json``: where the run stopped."""
    (out / "status.json").write_text(json.dumps(status))


@contextmanager
def csv_log(path: Path, header: Sequence[str]) -> Iterator[Callable[[Sequence[object]], None]]:
    """A function that appends one row to ``path`` and flushes it; ``header`` goes first
    into a new file only, so a resumed run continues the same log."""
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(header)

        def row(values: Sequence[object]) -> None:
            w.writerow(values)
            f.flush()

        yield row
