"""From a scenario to the runtime objects a mission runs: the protocol configuration, the
contact plans, and each link direction with its PHY, loss models, duty cycle and sessions.
Nothing here runs; :mod:`link_sim.mission` puts these objects into simpy processes.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import simpy

from link_sim.channel import BitErrorLoss, GilbertElliott, LossModel
from link_sim.contacts import ContactPlan, passes_from_tle
from link_sim.duty_cycle import DutyCycle
from link_sim.link import LinkDirection, MessageSessions
from link_sim.phy import LoraPhy, RatePhy
from link_sim.scenario import ContactsSpec, Direction
from textboost.protocol import LinkConfig

__all__ = [
    "build_contacts",
    "build_direction",
    "build_loss",
    "build_phy",
    "mean_capacity_Bps",
]


@lru_cache(maxsize=32)
def _tle_plan(spec_json: str, duration_s: float) -> ContactPlan:
    spec = ContactsSpec.model_validate_json(spec_json)
    assert spec.tle is not None and spec.station is not None and spec.start_utc is not None
    return passes_from_tle(
        spec.tle,
        lat_deg=spec.station.lat_deg,
        lon_deg=spec.station.lon_deg,
        alt_m=spec.station.alt_m,
        mask_deg=spec.mask_deg,
        start_utc=spec.start_utc,
        duration_s=duration_s,
    )


def build_contacts(
    spec: ContactsSpec | None, duration_s: float, forward: ContactPlan | None = None
) -> ContactPlan:
    if spec is None or spec.kind == "always":
        return ContactPlan(None)
    if spec.kind == "same_as_forward":
        assert forward is not None
        return forward
    if spec.kind == "windows":
        return ContactPlan(tuple((float(s), float(e)) for s, e in spec.windows or ()))
    return _tle_plan(spec.model_dump_json(), duration_s)


def build_phy(d: Direction) -> RatePhy | LoraPhy:
    if d.lora is not None:
        lo = d.lora
        return LoraPhy(
            spreading_factor=lo.spreading_factor,
            bandwidth_hz=lo.bandwidth_hz,
            coding_rate=lo.coding_rate,
            preamble_symbols=lo.preamble_symbols,
            explicit_header=lo.explicit_header,
            crc=lo.crc,
        )
    assert d.rate_bps is not None
    return RatePhy(d.rate_bps, d.frame_overhead_s)


def build_loss(d: Direction, seq: np.random.SeedSequence) -> LossModel:
    ber_seq, burst_seq = seq.spawn(2)
    ber = BitErrorLoss(d.ber, np.random.default_rng(ber_seq)) if d.ber > 0 else None
    burst = None
    if d.burst is not None:
        b = d.burst
        burst = GilbertElliott(b.p, b.r, b.loss_good, b.loss_bad, np.random.default_rng(burst_seq))
    return LossModel(ber, burst)


def build_direction(
    env: simpy.Environment,
    name: str,
    spec: Direction,
    plan: ContactPlan,
    seq: np.random.SeedSequence,
    *,
    pull: Callable[[float, int], list[bytes]],
    deliver: Callable[[bytes, float], None],
    medium: simpy.Resource | None,
) -> LinkDirection:
    duty = None
    if spec.duty_cycle is not None:
        dc = spec.duty_cycle
        duty = DutyCycle(dc.fraction, dc.mode, dc.window_s)
    sessions = None
    if spec.sessions is not None:
        sessions = MessageSessions(spec.sessions.setup_s, spec.sessions.gap_s)
    return LinkDirection(
        env, name=name, phy=build_phy(spec), delay_s=spec.delay_s, mtu_bytes=spec.mtu_bytes,
        loss=build_loss(spec, seq), contacts=plan, duty_cycle=duty, sessions=sessions,
        pull=pull, deliver=deliver, medium=medium,
    )


def mean_capacity_Bps(
    d: Direction, plan: ContactPlan, duration_s: float, config: LinkConfig
) -> float:
    """Section payload bytes per second the direction can carry on average: full frames,
    sessions, duty cycle and contact windows included (no loss, no protocol control)."""
    phy = build_phy(d)
    airtime = phy.airtime_s(config.mtu_bytes)
    per_frame_s = airtime + (d.sessions.setup_s + d.sessions.gap_s if d.sessions else 0.0)
    frames_per_s = 1.0 / per_frame_s
    if d.duty_cycle is not None:
        frames_per_s = min(frames_per_s, d.duty_cycle.fraction / airtime)
    contact_fraction = plan.open_seconds(0.0, duration_s) / duration_s
    return frames_per_s * config.fragment_payload_bytes * contact_fraction
