"""One simulated mission: simpy processes around the real edge and ground nodes.

Actors, one simpy process each: capture (the image source's schedule), encoder (device
latency profile and rate policy, then :class:`uplink.node.UplinkNode` storage), the
sender's and the receiver's protocol timers, a transmitter and a propagation process per
link direction (:mod:`link_sim.link`) and the decoder (the decode latency of the ground
profile). simpy supplies time and the channel only: storage and drops, fragmentation,
FEC, NAKs, retransmissions, reassembly and decoding of what arrived are the
:class:`~uplink.node.UplinkNode` and :class:`~downlink.node.DownlinkNode` the field runs,
around the sans-IO protocol objects.

Protocol timers run on contact time (:class:`link_sim.contacts.ContactClock`), so a
bundle does not exhaust its retries while the satellite is below the horizon.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import simpy

from downlink.node import DownlinkNode
from downlink.reassembly import join_sections
from link_sim.channel import BitErrorLoss, GilbertElliott, LossModel
from link_sim.codec_service import CodecService
from link_sim.contacts import ContactClock, ContactPlan, passes_from_tle
from link_sim.duty_cycle import DutyCycle
from link_sim.link import LinkDirection, MessageSessions, Signal
from link_sim.phy import LoraPhy, RatePhy
from link_sim.scenario import ContactsSpec, Direction, Scenario, image_paths
from textboost.codec.api import BudgetError
from textboost.protocol import (
    BundleDelivered,
    BundleFailed,
    LinkConfig,
    ReceiverGaveUp,
    SectionDelivered,
)
from uplink.node import UplinkNode

__all__ = ["ImageRecord", "Mission", "MissionResult", "build_contacts", "link_config"]

_RETX_FLAG = 0x02  # frames.Flag.RETX, read straight from byte 0 of a frame
_ADAPTIVE_STEP_BYTES = 32  # adaptive budgets are rounded down to this (cache hits)


@dataclass(slots=True)
class ImageRecord:
    """Everything that happened to one captured image (times in simulation seconds)."""

    index: int
    image: str
    width: int
    height: int
    capture_s: float
    encode_done_s: float | None = None
    bundle_bytes: int | None = None
    section_bytes: list[int] = field(default_factory=list)
    dropped: str | None = None
    first_byte_s: float | None = None
    first_pass_arrival_s: float | None = None
    section_delivered_s: list[float | None] = field(default_factory=list)
    delivered_s: float | None = None
    failed: str | None = None
    decoded_s: float | None = None
    decoded_sections: int = 0
    decode_note: str | None = None
    psnr_db: float | None = None
    decoded_image: str | None = None
    payload_bytes: int = 0
    header_bytes: int = 0
    fec_bytes: int = 0
    retransmission_bytes: int = 0

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def codec_bpp(self) -> float | None:
        return None if self.bundle_bytes is None else 8 * self.bundle_bytes / self.pixels

    @property
    def on_air_bytes(self) -> int:
        return self.payload_bytes + self.header_bytes + self.fec_bytes + self.retransmission_bytes

    @property
    def on_air_bpp(self) -> float:
        return 8 * self.on_air_bytes / self.pixels

    def latency_split(self) -> dict[str, float] | None:
        """encode / queue / air / retransmission / decode seconds of a delivered image."""
        if self.delivered_s is None or self.decoded_s is None or self.first_byte_s is None:
            return None
        assert self.encode_done_s is not None
        first_pass = min(self.delivered_s, self.first_pass_arrival_s or self.delivered_s)
        return {
            "encode": self.encode_done_s - self.capture_s,
            "queue": self.first_byte_s - self.encode_done_s,
            "air": first_pass - self.first_byte_s,
            "retransmission": self.delivered_s - first_pass,
            "decode": self.decoded_s - self.delivered_s,
        }

    @property
    def latency_s(self) -> float | None:
        return None if self.decoded_s is None or self.delivered_s is None else (
            self.decoded_s - self.capture_s
        )


@dataclass(slots=True)
class MissionResult:
    scenario: Scenario
    run_index: int
    records: list[ImageRecord]
    contacts: ContactPlan
    forward: LinkDirection
    reverse: LinkDirection | None
    uplink: UplinkNode
    downlink: DownlinkNode
    capacity_Bps: float  # mean forward payload capacity, contacts and duty cycle included
    codec_name: str


def link_config(scenario: Scenario) -> LinkConfig:
    p = scenario.protocol
    return LinkConfig(
        mtu_bytes=p.mtu_bytes,
        arq=scenario.arq,
        policy=p.policy,
        crc_bits=p.crc_bits,
        rto_s=p.rto_s,
        nak_timeout_s=p.nak_timeout_s,
        max_retries=p.max_retries,
        fec_k=p.fec.k,
        fec_m=p.fec.m,
    )


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


def _phy(d: Direction) -> RatePhy | LoraPhy:
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


def _loss(d: Direction, seq: np.random.SeedSequence) -> LossModel:
    ber_seq, burst_seq = seq.spawn(2)
    ber = BitErrorLoss(d.ber, np.random.default_rng(ber_seq)) if d.ber > 0 else None
    burst = None
    if d.burst is not None:
        b = d.burst
        burst = GilbertElliott(b.p, b.r, b.loss_good, b.loss_bad, np.random.default_rng(burst_seq))
    return LossModel(ber, burst)


def mean_capacity_Bps(
    d: Direction, plan: ContactPlan, duration_s: float, config: LinkConfig
) -> float:
    """Section payload bytes per second the direction can carry on average: full frames,
    sessions, duty cycle and contact windows included (no loss, no protocol control)."""
    phy = _phy(d)
    airtime = phy.airtime_s(config.mtu_bytes)
    per_frame_s = airtime + (d.sessions.setup_s + d.sessions.gap_s if d.sessions else 0.0)
    frames_per_s = 1.0 / per_frame_s
    if d.duty_cycle is not None:
        frames_per_s = min(frames_per_s, d.duty_cycle.fraction / airtime)
    contact_fraction = plan.open_seconds(0.0, duration_s) / duration_s
    return frames_per_s * config.fragment_payload_bytes * contact_fraction


class Mission:
    """Build with a scenario and a codec service; :meth:`run` returns a
    :class:`MissionResult`. Run ``run_index`` draws its random streams from
    ``SeedSequence([seed, run_index])``, one child per component."""

    def __init__(self, scenario: Scenario, codec: CodecService, run_index: int = 0) -> None:
        self.scenario = s = scenario
        self.codec = codec
        self.run_index = run_index
        self.env = env = simpy.Environment()
        self.config = link_config(s)
        self.uplink = UplinkNode(
            self.config, storage_bytes=s.sender.storage_bytes,
            drop_policy=s.sender.drop_policy, max_in_flight=s.sender.max_in_flight,
        )
        decoder = codec.decoder
        self.downlink = DownlinkNode(
            self.config, out_dir=None, defer_decode=True,
            codec_factory=None if decoder is None else (lambda: decoder),
        )
        seeds = np.random.SeedSequence([s.seed, run_index]).spawn(2)
        self.contacts = build_contacts(s.link.forward.contacts, s.duration_s)
        self.clock = ContactClock(self.contacts)
        self._medium = simpy.Resource(env, capacity=1) if s.link.half_duplex else None
        self.forward = self._direction("forward", s.link.forward, self.contacts, seeds[0],
                                       self._pull_forward, self._on_ground_frame)
        self.reverse: LinkDirection | None = None
        if s.link.reverse is not None:
            rev_spec = s.link.reverse.contacts or ContactsSpec(kind="same_as_forward")
            rev_plan = build_contacts(rev_spec, s.duration_s, self.contacts)
            self.reverse = self._direction("reverse", s.link.reverse, rev_plan, seeds[1],
                                           self._pull_reverse, self._on_edge_frame)
        self.capacity_Bps = mean_capacity_Bps(s.link.forward, self.contacts, s.duration_s,
                                              self.config)
        open_s = self.contacts.open_seconds(0.0, s.duration_s)
        self.contact_Bps = self.capacity_Bps * s.duration_s / open_s if open_s else 0.0
        self.paths = image_paths(s)
        self.records: list[ImageRecord] = []
        self._by_bundle: dict[int, ImageRecord] = {}
        self._sections: dict[int, list[bytes]] = {}
        self._encode_q: simpy.Store = simpy.Store(env)
        self._decode_q: simpy.Store = simpy.Store(env)
        self._sender_wake = Signal(env)
        self._receiver_wake = Signal(env)
        self._armed: dict[int, float | None] = {}  # id(node) -> deadline its timer waits for
        for proc in (self._capture, self._encoder, self._sender_timers,
                     self._receiver_timers, self._decoder):
            env.process(proc())

    def _direction(self, name, spec: Direction, plan, seq, pull, deliver) -> LinkDirection:
        duty = None
        if spec.duty_cycle is not None:
            dc = spec.duty_cycle
            duty = DutyCycle(dc.fraction, dc.mode, dc.window_s)
        sessions = None
        if spec.sessions is not None:
            sessions = MessageSessions(spec.sessions.setup_s, spec.sessions.gap_s)
        return LinkDirection(
            self.env, name=name, phy=_phy(spec), delay_s=spec.delay_s, mtu_bytes=spec.mtu_bytes,
            loss=_loss(spec, seq), contacts=plan, duty_cycle=duty, sessions=sessions,
            pull=pull, deliver=deliver, medium=self._medium,
        )

    def _path(self, index: int):
        return self.paths[index % len(self.paths)]

    # --- the edge ---------------------------------------------------------------------------

    def _capture(self):
        env, s = self.env, self.scenario
        cap = s.images.capture
        for i in range(cap.count):
            t = cap.start_s + i * cap.interval_s
            if t >= s.duration_s:
                return
            yield env.timeout(t - env.now)
            w, h = self.codec.image_size(self._path(i))
            self.records.append(ImageRecord(i, self._path(i).name, w, h, capture_s=env.now))
            yield self._encode_q.put(i)

    def _budget(self) -> dict[str, float | int]:
        r = self.scenario.rate
        if r.policy == "rate":
            return {"rate": r.rate}
        if r.policy == "bpp":
            return {"bpp": r.bpp}
        if r.policy == "bytes":
            return {"max_bytes": r.max_bytes}
        assert r.min_bytes is not None and r.max_bytes is not None
        # What the link can still carry before the next capture (always-up links) or
        # before the end of the current or next pass, less what storage already holds.
        now = self.env.now
        if self.contacts.always:
            horizon_s = self.scenario.images.capture.interval_s
        else:
            window = self.contacts.current_or_next(now)
            horizon_s = 0.0 if window is None else window[1] - max(now, window[0])
        offer = self.contact_Bps * horizon_s - self.uplink.storage.used_bytes
        budget = int(min(r.max_bytes, max(r.min_bytes, offer)))
        return {"max_bytes": max(r.min_bytes, budget - budget % _ADAPTIVE_STEP_BYTES)}

    def _encoder(self):
        env, s = self.env, self.scenario
        while True:
            i = yield self._encode_q.get()
            rec = self.records[i]
            yield env.timeout(s.sender.encode_s)
            try:
                data = self.codec.encode(self._path(i), **self._budget())
            except BudgetError as exc:
                rec.dropped = f"encoder: {exc}"
                continue
            rec.encode_done_s = env.now
            rec.bundle_bytes = len(data)
            for drop in self.uplink.store(str(i), data, self.clock.to_contact(env.now)):
                self.records[int(drop.image_id)].dropped = drop.reason
            self._poke(self.uplink, self._sender_wake)
            self.forward.wake()

    def _pull_forward(self, now: float, budget: int) -> list[bytes]:
        frames = self.uplink.poll_transmit(self.clock.to_contact(now), budget)
        t = now
        for frame in frames:
            bid = int.from_bytes(frame[1:3], "big")
            rec = self.records[int(self.uplink.bundle_image[bid])]
            hold = self.forward._hold_s(len(frame))
            if rec.first_byte_s is None:
                self._start_bundle(bid, rec, t)
            if not frame[0] & _RETX_FLAG:
                rec.first_pass_arrival_s = t + hold + self.forward.delay_s
            t += hold
        if frames:
            self._poke(self.uplink, self._sender_wake)
        return frames

    def _start_bundle(self, bid: int, rec: ImageRecord, now: float) -> None:
        rec.first_byte_s = now
        self._by_bundle[bid] = rec
        rec.section_bytes = list(self.uplink.sender.records[bid].section_bytes)
        rec.section_delivered_s = [None] * len(rec.section_bytes)

    def _on_edge_frame(self, frame: bytes, now: float) -> None:
        for ev in self.uplink.receive(frame, self.clock.to_contact(now)):
            self._on_sender_event(ev)
        self._poke(self.uplink, self._sender_wake)
        self.forward.wake()

    def _on_sender_event(self, ev) -> None:
        if isinstance(ev, BundleFailed):
            self._by_bundle[ev.bundle_id].failed = ev.reason

    def _poke(self, node, wake: Signal) -> None:
        """Wake a node's timer process if its next deadline changed."""
        if node.next_timer() != self._armed.get(id(node)):
            wake.fire()

    def _timers(self, node, wake: Signal, on_event: Callable, link):
        env, clock = self.env, self.clock
        while True:
            deadline = self._armed[id(node)] = node.next_timer()
            at = math.inf if deadline is None else clock.from_contact(deadline)
            if at > env.now:
                yield wake.wait() if math.isinf(at) else wake.wait() | env.timeout(at - env.now)
                continue
            for ev in node.handle_timeout(max(deadline, clock.to_contact(env.now))):
                on_event(ev)
            if link is not None:
                link.wake()

    def _sender_timers(self):
        return self._timers(self.uplink, self._sender_wake, self._on_sender_event, self.forward)

    # --- the ground -------------------------------------------------------------------------

    def _on_ground_frame(self, frame: bytes, now: float) -> None:
        for ev in self.downlink.receive(frame, self.clock.to_contact(now)):
            self._on_receiver_event(ev)
        for job in self.downlink.take_complete():
            self._decode_q.put(job)  # decoded by the node after the ground's decode latency
        self._poke(self.downlink, self._receiver_wake)
        if self.reverse is not None:
            self.reverse.wake()

    def _on_receiver_event(self, ev) -> None:
        rec = self._by_bundle[ev.bundle_id]
        if isinstance(ev, SectionDelivered):
            rec.section_delivered_s[ev.index] = self.env.now
            self._sections.setdefault(ev.bundle_id, []).append(ev.data)
        elif isinstance(ev, BundleDelivered):
            rec.delivered_s = self.env.now
        elif isinstance(ev, ReceiverGaveUp):
            rec.failed = f"receiver gave up with {ev.delivered_sections} sections"

    def _pull_reverse(self, now: float, budget: int) -> list[bytes]:
        del budget  # control frames are small; a frame over the MTU goes as several messages
        return self.downlink.poll_transmit(self.clock.to_contact(now))

    def _receiver_timers(self):
        return self._timers(self.downlink, self._receiver_wake, self._on_receiver_event,
                            self.reverse)

    def _decoder(self):
        # One decoder at the ground: each complete bundle waits for it, then the node
        # decodes it after the ground profile's decode latency.
        env = self.env
        while True:
            job = yield self._decode_q.get()
            yield env.timeout(self.scenario.receiver.decode_latency_s)
            self.downlink.decode([job])
            self._take_result(job[0], env.now)

    def _take_result(self, bid: int, now: float | None) -> None:
        rec = self._by_bundle[bid]
        res = self.downlink.results.get(bid)
        if res is None:
            return
        synthetic = self.codec.decoder is None
        if res.error:
            rec.decode_note = res.error
        if not (res.decoded or (synthetic and res.sections_delivered >= 2)):
            return
        rec.decoded_sections = res.sections_delivered
        rec.decoded_s = now
        if synthetic:
            return
        if rec.index % self.scenario.decode_every:
            rec.decode_note = f"quality not sampled (decode_every={self.scenario.decode_every})"
            return
        # Simulation only: the original is at hand, so measure what the ground decoded.
        data = join_sections(self._sections[bid]).to_bytes()
        rec.psnr_db, image = self.codec.quality(self._path(rec.index), data)
        rec.decoded_image = str(image)

    # --- running ----------------------------------------------------------------------------

    def run(self, progress: Callable[[float], None] | None = None) -> MissionResult:
        s = self.scenario
        if progress is None:
            self.env.run(until=s.duration_s)
        else:
            step = s.duration_s / 100
            for k in range(1, 101):
                self.env.run(until=k * step)
                progress(k * step)
        pending = [b for b in self._by_bundle if b not in self.downlink.results]
        self.downlink.finish(self.clock.to_contact(s.duration_s))
        for bid in pending:
            # Bundles still incomplete at the end: what arrived is decoded afterwards.
            self._take_result(bid, None)
            rec = self._by_bundle[bid]
            if rec.decoded_sections and rec.delivered_s is not None:
                rec.decode_note = "complete, but still waiting for the decoder at mission end"
            elif rec.decoded_sections:
                rec.decode_note = "partial at mission end, decoded afterwards"
        for bid, rec in self._by_bundle.items():
            sent = self.uplink.sender.records[bid]
            rec.payload_bytes = sent.payload_bytes
            rec.header_bytes = sent.header_bytes
            rec.fec_bytes = sent.fec_bytes
            rec.retransmission_bytes = sent.retransmission_bytes
        return MissionResult(
            scenario=s, run_index=self.run_index, records=self.records, contacts=self.contacts,
            forward=self.forward, reverse=self.reverse, uplink=self.uplink,
            downlink=self.downlink, capacity_Bps=self.capacity_Bps,
            codec_name=self.codec.name,
        )
