"""The project's codec as an evaluation entrant: real `.tbx` bytes at each byte budget."""

from __future__ import annotations

from typing import Any

import numpy as np

from textboost.codec.budget import BudgetError

__all__ = ["OURS_NAME", "BudgetError", "OursEntrant"]

OURS_NAME = "ours"


class OursEntrant:
    """Wraps `textboost.Codec` (loaded once per process) for budgeted encodes.

    Each budget is met with `Codec.encode_to_budget(img, max_bytes=budget)`: the rate
    bisected on real bytes and, near the bottom of the rate range, smaller coded sizes
    compared by decoded PSNR, as the baselines' quality × downscale search does. The
    bytes counted are the whole container (header, text section, z and every y group).
    """

    name = OURS_NAME
    label = "TextBoost (ours)"
    backend = "torch"
    device = "cpu"

    def __init__(self) -> None:
        import torch

        from textboost import Pipeline

        torch.set_num_threads(1)  # one thread per worker process: at most 2 workers share the CPU
        self._codec = Pipeline.load(backend=self.backend, device=self.device)

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "library": "textboost",
            "model_id": self._codec.model_id.hex(),
            "mode": "encode_to_budget(max_bytes=budget): rate bisection, scale search",
            "backend": self.backend,
            "device": self.device,
            "torch_threads": 1,
        }

    def encode(self, img: np.ndarray, budget: int) -> bytes:
        """Container bytes within `budget`; raises `BudgetError` when no stream fits."""
        data = self._codec.encode_to_budget(img, max_bytes=budget)
        if len(data) > budget:
            raise AssertionError(f"encode_to_budget returned {len(data)} B for a {budget} B budget")
        return data

    def decode(self, data: bytes) -> np.ndarray:
        return self._codec.decode(data)
