"""Channel and access models against theory: BER → frame loss, Gilbert–Elliott stationary
loss and burst length, LoRa time on air, duty-cycle limits, M/D/1 queueing delay."""

from __future__ import annotations

import itertools
import math
from collections import deque

import numpy as np
import pytest
import simpy

from link_sim.channel import BitErrorLoss, GilbertElliott, LossModel, frame_loss_probability
from link_sim.contacts import ContactPlan
from link_sim.duty_cycle import DutyCycle
from link_sim.link import LinkDirection, MessageSessions
from link_sim.phy import LoraPhy, RatePhy


def test_frame_loss_probability_formula():
    assert frame_loss_probability(1e-4, 100) == pytest.approx(1 - (1 - 1e-4) ** 800, rel=1e-12)
    assert frame_loss_probability(0.0, 1000) == 0.0
    # tiny BER: no cancellation, ≈ bits × BER
    assert frame_loss_probability(1e-12, 256) == pytest.approx(8 * 256 * 1e-12, rel=1e-6)


@pytest.mark.parametrize("frame_bytes", [32, 256, 1024])
def test_ber_loss_matches_independent_bit_errors(frame_bytes):
    """Frame loss from the model vs frames whose bits are flipped one by one."""
    ber, n = 2e-5, 40_000
    model = BitErrorLoss(ber, np.random.default_rng(1))
    lost_model = sum(model.lost(frame_bytes) for _ in range(n)) / n
    flips = np.random.default_rng(2).binomial(8 * frame_bytes, ber, size=n)
    lost_bits = float(np.mean(flips > 0))
    expected = 1 - (1 - ber) ** (8 * frame_bytes)
    tol = 4 * math.sqrt(expected * (1 - expected) / n)
    assert lost_model == pytest.approx(expected, abs=tol)
    assert lost_bits == pytest.approx(expected, abs=tol)


def test_gilbert_elliott_stationary_loss_and_burst_length():
    p, r, loss_good, loss_bad = 0.02, 0.25, 0.01, 0.7
    ge = GilbertElliott(p, r, loss_good, loss_bad, np.random.default_rng(3))
    n = 400_000  # ~6000 bad stays: relative standard error of the figures below ~1.5 %
    lost, states = np.zeros(n, bool), np.zeros(n, bool)
    for i in range(n):
        lost[i] = ge.lost(100)
        states[i] = ge.bad
    pb = p / (p + r)
    assert ge.stationary_loss == pytest.approx((1 - pb) * loss_good + pb * loss_bad)
    assert lost.mean() == pytest.approx(ge.stationary_loss, rel=0.06)
    assert states.mean() == pytest.approx(pb, rel=0.06)
    # mean stay in the bad state = 1/r frames
    edges = np.flatnonzero(np.diff(states.astype(np.int8)))
    runs = [b - a for a, b in itertools.pairwise(edges) if states[a + 1]]
    assert np.mean(runs) == pytest.approx(1 / r, rel=0.06)


def test_gilbert_simple_loss_run_length():
    """netem's Simple Gilbert (lose every frame in bad, none in good): loss bursts of 1/r."""
    ge = GilbertElliott(0.05, 0.4, 0.0, 1.0, np.random.default_rng(4))
    lost = np.array([ge.lost(1) for _ in range(100_000)], np.int8)
    edges = np.flatnonzero(np.diff(lost))
    runs = [b - a for a, b in itertools.pairwise(edges) if lost[a + 1]]
    assert np.mean(runs) == pytest.approx(1 / 0.4, rel=0.05)
    assert lost.mean() == pytest.approx(0.05 / 0.45, rel=0.05)


def test_loss_model_combines_both():
    both = LossModel(BitErrorLoss(1.0 - 1e-9, np.random.default_rng(0)), None)
    assert both.lost(10)
    assert not LossModel().lost(10)


def test_lora_time_on_air_matches_semtech_formula():
    # SX1276 datasheet / AN1200.13 formula; Semtech's calculator gives these figures.
    assert LoraPhy(spreading_factor=12).airtime_s(51) == pytest.approx(2.465792, abs=1e-6)
    assert LoraPhy(spreading_factor=7).airtime_s(51) == pytest.approx(0.102656, abs=1e-6)
    assert LoraPhy(spreading_factor=12).airtime_s(10) < LoraPhy(spreading_factor=12).airtime_s(51)


def _saturated_link(env, *, phy, mtu=51, duty=None, sessions=None, contacts=None, delay_s=0.0):
    delivered: list[tuple[float, bytes]] = []
    link = LinkDirection(
        env, name="t", phy=phy, delay_s=delay_s, mtu_bytes=mtu, loss=LossModel(),
        contacts=contacts or ContactPlan(None), duty_cycle=duty, sessions=sessions,
        pull=lambda now, budget: [bytes(budget)],
        deliver=lambda frame, now: delivered.append((now, frame)),
    )
    return link, delivered


def test_duty_cycle_off_time_spaces_frames():
    env = simpy.Environment()
    phy = LoraPhy(spreading_factor=12)
    link, _ = _saturated_link(env, phy=phy, duty=DutyCycle(0.01, "off_time"))
    env.run(until=3000)
    gaps = np.diff(link.log.start_s)
    assert gaps == pytest.approx(np.full(len(gaps), phy.airtime_s(51) / 0.01))


def test_duty_cycle_sliding_hour_budget():
    env = simpy.Environment()
    phy = LoraPhy(spreading_factor=12)
    link, _ = _saturated_link(env, phy=phy, duty=DutyCycle(0.01, "sliding", 3600.0))
    env.run(until=4 * 3600)
    start = np.array(link.log.start_s)
    air = np.array(link.log.airtime_s)
    for t0 in np.arange(0, 3 * 3600, 60.0):
        inside = (start >= t0) & (start + air <= t0 + 3600)
        assert air[inside].sum() <= 36.0 + 1e-6
    # and the budget is used: 14 frames of 2.466 s fit in 36 s per hour
    assert len(start) >= 4 * 14


def test_message_sessions_cost_setup_and_gap():
    env = simpy.Environment()
    phy = RatePhy(2400.0)
    link, delivered = _saturated_link(env, phy=phy, mtu=340,
                                      sessions=MessageSessions(setup_s=15.0, gap_s=2.0),
                                      delay_s=0.3)
    env.run(until=1000)
    per_msg = 15.0 + 340 * 8 / 2400 + 2.0
    assert np.diff(link.log.start_s) == pytest.approx(np.full(link.log.frames - 1, per_msg))
    assert delivered[0][0] == pytest.approx(15.0 + 340 * 8 / 2400 + 2.0 + 0.3)


def test_transmitter_respects_contact_windows():
    env = simpy.Environment()
    plan = ContactPlan(((100.0, 110.0), (500.0, 530.5)))
    link, _ = _saturated_link(env, phy=RatePhy(800.0), mtu=100, contacts=plan)
    env.run(until=1000)
    for start, air in zip(link.log.start_s, link.log.airtime_s, strict=True):
        assert any(a <= start and start + air <= b + 1e-9 for a, b in plan.windows)
    assert link.log.frames == 10 + 30  # 1 s per frame; no frame straddles loss of signal
    assert plan.to_contact(505.0) == pytest.approx(15.0)
    assert plan.from_contact(15.0) == pytest.approx(505.0)


def test_queueing_delay_matches_md1():
    """Poisson arrivals into a deterministic-service link: Pollaczek–Khinchine mean wait
    W = ρ D / (2 (1 - ρ))."""
    env = simpy.Environment()
    frame_bytes, rate_bps, rho = 100, 800.0, 0.6
    service_s = frame_bytes * 8 / rate_bps
    queue: deque[float] = deque()
    waits: list[float] = []

    def pull(now, budget):
        if not queue:
            return []
        waits.append(now - queue.popleft())
        return [bytes(frame_bytes)]

    link = LinkDirection(env, name="q", phy=RatePhy(rate_bps), delay_s=0.0, mtu_bytes=frame_bytes,
                         loss=LossModel(), contacts=ContactPlan(None), duty_cycle=None,
                         sessions=None, pull=pull, deliver=lambda f, t: None)
    rng = np.random.default_rng(5)

    def arrivals():
        while True:
            yield env.timeout(rng.exponential(service_s / rho))
            queue.append(env.now)
            link.wake()

    env.process(arrivals())
    env.run(until=60_000 * service_s)
    expected = rho * service_s / (2 * (1 - rho))
    assert np.mean(waits[1000:]) == pytest.approx(expected, rel=0.06)
