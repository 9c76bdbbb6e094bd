"""The one rate/budget model: how big each image's stream may be. The field file's
``uplink.budget``, the scenario file's ``rate`` and the CLIs' ``--max-bytes`` / ``--bpp`` /
``--rate`` (:func:`add_budget_arguments`) share its names, limits (those of
:mod:`textboost.codec.rate`) and default, :data:`DEFAULT_BUDGET`.

Where a surface differs, it says why: a scenario must state its budget (it is the figure the
mission is planned around) and may ask for ``adaptive`` (a byte budget the simulator sizes to
what the link carries before the next capture, which needs the link model only the simulator
has); ``textboost eval`` defaults to :data:`EVAL_BUDGET`, the operating point its figures
are compared at; ``textboost encode`` and ``uplink encode`` make the budget an explicit choice.
"""

from __future__ import annotations

import argparse
from typing import Literal

from pydantic import Field, model_validator

from textboost.codec.rate import (
    MAX_BPP,
    MIN_BUDGET_BYTES,
    ByteBudget,
    FixedBpp,
    FixedRate,
    RatePolicy,
    check_bpp,
    check_max_bytes,
    check_rate,
)
from textboost.settings.load import StrictModel

__all__ = [
    "DEFAULT_BUDGET",
    "EVAL_BUDGET",
    "Budget",
    "add_budget_arguments",
    "policy_from_args",
]

_GIVEN = ("rate", "bpp", "max_bytes")
_NEEDS = {"rate": ("rate",), "bpp": ("bpp",), "bytes": ("max_bytes",),
          "adaptive": ("min_bytes", "max_bytes")}  # fmt: skip


class Budget(StrictModel):
    """Exactly one of ``max_bytes``, ``bpp`` or ``rate``; ``policy`` names which (it may be
    left out then), and ``adaptive`` takes ``min_bytes`` and ``max_bytes``."""

    policy: Literal["rate", "bpp", "bytes", "adaptive"] | None = None
    rate: float | None = Field(None, ge=0.0, le=1.0, description="codec rate 0..1 (0 = smallest)")
    bpp: float | None = Field(
        None, gt=0.0, le=MAX_BPP, description="bits per pixel budget per image (whole file)"
    )
    max_bytes: int | None = Field(
        None, ge=MIN_BUDGET_BYTES, description="byte budget per image (whole file, text included)"
    )
    min_bytes: int | None = Field(None, ge=MIN_BUDGET_BYTES, description="adaptive: the least")

    @model_validator(mode="after")
    def _one_policy(self) -> Budget:
        given = [k for k in _GIVEN if getattr(self, k) is not None]
        if self.policy is None:
            if len(given) != 1 or self.min_bytes is not None:
                raise ValueError(
                    f"expected exactly one of max_bytes, bpp, rate (or a policy), got "
                    f"{self.model_dump(exclude_none=True)}"
                )
            policy = "bytes" if given[0] == "max_bytes" else given[0]
            object.__setattr__(self, "policy", policy)  # frozen: set once, while validating
        for name in _NEEDS[self.policy]:
            if getattr(self, name) is None:
                raise ValueError(f"policy {self.policy!r}: expected '{name}' as well")
        lo, hi = self.min_bytes, self.max_bytes
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_bytes {lo} > max_bytes {hi}: expected min <= max")
        return self

    def fixed_policy(self, effort: int = 0) -> RatePolicy | None:
        """The codec's rate policy; None for ``adaptive`` (a :class:`ByteBudget` that the
        simulator chooses at each capture)."""
        if self.policy == "rate":
            return FixedRate(self.rate, effort)  # type: ignore[arg-type]
        if self.policy == "bpp":
            return FixedBpp(self.bpp, effort)  # type: ignore[arg-type]
        if self.policy == "bytes":
            return ByteBudget(self.max_bytes, effort)  # type: ignore[arg-type]
        return None


DEFAULT_BUDGET = Budget(max_bytes=2000)  # the field service's and `uplink send|verify`'s
EVAL_BUDGET = Budget(bpp=0.03)  # `textboost eval`'s: the design's operating point


def add_budget_arguments(
    parser: argparse.ArgumentParser, *, required: bool = False, default: str = ""
) -> None:
    """``--max-bytes`` / ``--bpp`` / ``--rate``, one at most (``required``: exactly one);
    ``default`` is said in the help of the option that applies when none is given."""
    g = parser.add_mutually_exclusive_group(required=required)
    fields = Budget.model_fields
    for name, kind in (("max_bytes", int), ("bpp", float), ("rate", float)):
        flag = "--" + name.replace("_", "-")
        help_ = fields[name].description + (f" (default {default})" if flag in default else "")
        g.add_argument(flag, type=kind, help=help_)


def policy_from_args(args: argparse.Namespace, default: Budget | None = DEFAULT_BUDGET,
                     effort: int = 0) -> RatePolicy:
    """The rate policy of :func:`add_budget_arguments`' options, or ``default``'s.

    Raises: ValueError naming the option (:mod:`textboost.codec.rate`'s checks and wording)
    before any work starts."""
    if args.max_bytes is not None:
        return ByteBudget(check_max_bytes(args.max_bytes, "--max-bytes"), effort)
    if args.bpp is not None:
        return FixedBpp(check_bpp(args.bpp, "--bpp"), effort)
    if args.rate is not None:
        return FixedRate(check_rate(args.rate, "--rate"), effort)
    if default is None:
        raise ValueError("expected one of --max-bytes, --bpp, --rate")
    return default.fixed_policy(effort)  # type: ignore[return-value]
