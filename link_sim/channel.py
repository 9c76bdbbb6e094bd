"""Per-frame loss models: independent bit errors and Gilbert–Elliott bursts.

Each model owns its own ``numpy.random.Generator`` (derived from the scenario seed by the
runner), so adding a component never shifts another component's random stream.

Bit errors: a frame of ``n`` bytes survives when all its ``8n`` bits do, so its loss
probability is ``1 - (1 - BER)^(8n)``; a CRC catches the damage and the frame is dropped.

Gilbert–Elliott is parameterised as Linux netem's ``loss gemodel p r 1-h 1-k``: the chain
moves good→bad with probability ``p`` and bad→good with ``r`` once per frame; a frame is lost
with probability ``1-k`` in the good state and ``1-h`` in the bad state. The stationary
probability of the bad state is ``p/(p+r)`` and a stay in it lasts ``1/r`` frames on average.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["BitErrorLoss", "GilbertElliott", "LossModel", "frame_loss_probability"]


def frame_loss_probability(ber: float, frame_bytes: int) -> float:
    """``1 - (1 - BER)^bits`` computed without cancellation for tiny BERs."""
    return float(-np.expm1(8 * frame_bytes * np.log1p(-ber)))


@dataclass(slots=True)
class BitErrorLoss:
    """Independent bit errors at ``ber``; a frame is lost if any of its bits is flipped."""

    ber: float
    rng: np.random.Generator

    def lost(self, frame_bytes: int) -> bool:
        if self.ber <= 0.0:
            return False
        return bool(self.rng.random() < frame_loss_probability(self.ber, frame_bytes))


@dataclass(slots=True)
class GilbertElliott:
    """Two-state burst loss, stepped once per frame (netem ``gemodel``).

    Args:
        p: probability good → bad per frame.
        r: probability bad → good per frame (mean burst length 1/r frames).
        loss_good: loss probability in the good state (netem ``1-k``).
        loss_bad: loss probability in the bad state (netem ``1-h``).
    """

    p: float
    r: float
    loss_good: float
    loss_bad: float
    rng: np.random.Generator
    bad: bool = field(default=False)

    def __post_init__(self) -> None:
        # Start in the stationary distribution so short runs are unbiased.
        self.bad = bool(self.rng.random() < self.stationary_bad)

    @property
    def stationary_bad(self) -> float:
        total = self.p + self.r
        return self.p / total if total > 0 else 0.0

    @property
    def stationary_loss(self) -> float:
        pb = self.stationary_bad
        return (1.0 - pb) * self.loss_good + pb * self.loss_bad

    def lost(self, frame_bytes: int) -> bool:
        del frame_bytes  # burst loss here is per frame, independent of its length
        u_state, u_loss = self.rng.random(2)
        self.bad = bool(u_state >= self.r) if self.bad else bool(u_state < self.p)
        return bool(u_loss < (self.loss_bad if self.bad else self.loss_good))


@dataclass(slots=True)
class LossModel:
    """Bit errors and bursts combined: a frame is lost if either model loses it."""

    bit_errors: BitErrorLoss | None = None
    bursts: GilbertElliott | None = None

    def lost(self, frame_bytes: int) -> bool:
        # Step both models every frame so each keeps its own statistics.
        a = self.bit_errors.lost(frame_bytes) if self.bit_errors else False
        b = self.bursts.lost(frame_bytes) if self.bursts else False
        return a or b
