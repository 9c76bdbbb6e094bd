"""One simulated mission: simpy processes around the real edge and ground nodes.

Covers:
    - one generator per actor, woken by :class:`~link_sim.link.Signal` events
    - ``simpy.Store`` queues between the camera, the encoder and the ground decoder
    - protocol timers on contact time, so a bundle does not exhaust its retries while the
      satellite is below the horizon

Scenario:
    A camera captures images on a schedule. The encoder takes the sender's encode latency
    and stores each stream in the :class:`~uplink.node.UplinkNode`, whose protocol sender
    fragments it into frames. A transmitter and a propagation process per link direction
    (:mod:`link_sim.link`) carry frames to the :class:`~downlink.node.DownlinkNode` and its
    NAKs back. The ground reads the words of each bundle as soon as its first section
    (header and text) lands, and decodes each complete bundle after the receiver's decode
    latency. At the end, the spotter reads each decoded image once (cached) and is scored
    against the ground truth shipped beside the originals, where there is one.
    simpy supplies time and the channel only: storage and drops, FEC, NAKs,
    retransmissions, reassembly and decoding are the nodes the field runs.

The runtime objects come from the scenario through :mod:`link_sim.build`; what happened to
each image is an :class:`~link_sim.records.ImageTrace`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import simpy

from downlink.node import DownlinkNode
from link_sim.build import build_contacts, build_direction, mean_capacity_Bps
from link_sim.codec_service import CodecService
from link_sim.link import LinkDirection, Signal
from link_sim.records import ImageTrace, MissionResult
from link_sim.scenario import ContactsSpec, Scenario, image_paths, link_config
from textboost.bitstream.container import Container, SectionKind
from textboost.codec.api import BudgetError
from textboost.codec.rate import ByteBudget, RatePolicy
from textboost.protocol import (
    BundleDelivered,
    BundleFailed,
    ReceiverGaveUp,
    SectionDelivered,
    SectionProgress,
    frame_info,
)
from textboost.text.words import Word
from uplink.node import UplinkNode

__all__ = ["Mission"]

ADAPTIVE_STEP_BYTES = 32  # adaptive budgets are rounded down to this (cache hits)


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
        decoder = codec.decoder  # None for synthetic payloads: reassemble, never decode
        self.downlink = DownlinkNode(
            self.config, out_dir=None, defer_decode=True,
            codec_factory=None if decoder is None else (lambda: decoder),
        )
        seeds = np.random.SeedSequence([s.seed, run_index]).spawn(2)
        self.contacts = build_contacts(s.link.forward.contacts, s.duration_s)
        medium = simpy.Resource(env, capacity=1) if s.link.half_duplex else None
        self.forward = build_direction(
            env, "forward", s.link.forward, self.contacts, seeds[0],
            pull=self._pull_forward, deliver=self._on_ground_frame, medium=medium,
        )
        self.reverse: LinkDirection | None = None
        if s.link.reverse is not None:
            rev_spec = s.link.reverse.contacts or ContactsSpec(kind="same_as_forward")
            self.reverse = build_direction(
                env, "reverse", s.link.reverse,
                build_contacts(rev_spec, s.duration_s, self.contacts), seeds[1],
                pull=self._pull_reverse, deliver=self._on_edge_frame, medium=medium,
            )
        self.capacity_Bps = mean_capacity_Bps(s.link.forward, self.contacts, s.duration_s,
                                              self.config)
        open_s = self.contacts.open_seconds(0.0, s.duration_s)
        self.contact_Bps = self.capacity_Bps * s.duration_s / open_s if open_s else 0.0
        self.paths = image_paths(s)
        self.records: list[ImageTrace] = []
        self._by_bundle: dict[int, ImageTrace] = {}
        self._sections: dict[int, list[bytes]] = {}
        self._encode_q = simpy.Store(env)
        self._decode_q = simpy.Store(env)
        self._sender_wake = Signal(env)
        self._receiver_wake = Signal(env)
        self._armed: dict[int, float | None] = {}  # id(node) -> deadline its timer waits for
        env.process(self.camera())
        env.process(self.encoder())
        env.process(self.timers(self.uplink, self._sender_wake, self._on_sender_event,
                                self.forward))
        env.process(self.timers(self.downlink, self._receiver_wake, self._on_receiver_event,
                                self.reverse))
        env.process(self.decoder())

    def _path(self, index: int):
        return self.paths[index % len(self.paths)]

    # --- the edge ---------------------------------------------------------------------------

    def camera(self) -> Iterator[simpy.Event]:
        """Capture on the scenario's schedule; each capture goes to the encoder's queue."""
        env, s = self.env, self.scenario
        cap = s.images.capture
        for i in range(cap.count):
            t = cap.start_s + i * cap.interval_s
            if t >= s.duration_s:
                return
            yield env.timeout(t - env.now)
            w, h = self.codec.image_size(self._path(i))
            self.records.append(ImageTrace(i, self._path(i).name, w, h, capture_s=env.now))
            yield self._encode_q.put(i)

    def encoder(self) -> Iterator[simpy.Event]:
        """Encode one capture at a time (the sender's latency), then store it for sending."""
        env = self.env
        while True:
            i = yield self._encode_q.get()
            rec = self.records[i]
            yield env.timeout(self.scenario.sender.encode_s)
            try:
                data = self.codec.encode(
                    self._path(i),
                    self._rate_policy(),
                    text=self.scenario.text_path,
                    name=self.scenario.send_name,
                )
            except BudgetError as exc:
                rec.dropped = f"encoder: {exc}"
                continue
            rec.encode_done_s = env.now
            rec.bundle_bytes = len(data)
            rec.text_bytes = len(Container.parse(data).text)
            for drop in self.uplink.store(str(i), data, self.contacts.to_contact(env.now)):
                self.records[int(drop.image_id)].dropped = drop.reason
            self._poke(self.uplink, self._sender_wake)
            self.forward.wake()

    def _rate_policy(self) -> RatePolicy:
        """The scenario's policy; an adaptive one offers what the link can still carry
        before the next capture (always-up links) or before the end of the current or next
        pass, less what storage already holds."""
        r = self.scenario.rate
        fixed = r.fixed_policy()
        if fixed is not None:
            return fixed
        assert r.min_bytes is not None and r.max_bytes is not None
        if self.contacts.always:
            horizon_s = self.scenario.images.capture.interval_s
        else:
            horizon_s = self.contacts.remaining_s(self.env.now)
        offer = self.contact_Bps * horizon_s - self.uplink.storage.used_bytes
        budget = int(min(r.max_bytes, max(r.min_bytes, offer)))
        return ByteBudget(max(r.min_bytes, budget - budget % ADAPTIVE_STEP_BYTES))

    def _pull_forward(self, now: float, budget: int) -> list[bytes]:
        """The forward transmitter asks the edge node for frames; each image's first byte
        and first-pass arrival are noted as its frames leave."""
        frames = self.uplink.poll_transmit(self.contacts.to_contact(now), budget)
        t = now
        for frame in frames:
            info = frame_info(frame)
            rec = self.records[int(self.uplink.bundle_image[info.bundle_id])]
            hold_s = self.forward.hold_s(len(frame))
            if rec.first_byte_s is None:
                self._start_bundle(info.bundle_id, rec, t)
            if not info.retransmission:
                rec.first_pass_arrival_s = t + hold_s + self.forward.delay_s
            t += hold_s
        if frames:
            self._poke(self.uplink, self._sender_wake)
        return frames

    def _start_bundle(self, bid: int, rec: ImageTrace, now: float) -> None:
        rec.first_byte_s = now
        self._by_bundle[bid] = rec
        rec.section_bytes = list(self.uplink.sender.records[bid].section_bytes)
        rec.section_delivered_s = [None] * len(rec.section_bytes)

    def _on_edge_frame(self, frame: bytes, now: float) -> None:
        for ev in self.uplink.receive(frame, self.contacts.to_contact(now)):
            self._on_sender_event(ev)
        self._poke(self.uplink, self._sender_wake)
        self.forward.wake()

    def _on_sender_event(self, ev) -> None:
        if isinstance(ev, BundleFailed):
            self._by_bundle[ev.bundle_id].failed = ev.reason

    # --- the ground -------------------------------------------------------------------------

    def _on_ground_frame(self, frame: bytes, now: float) -> None:
        for ev in self.downlink.receive(frame, self.contacts.to_contact(now)):
            self._on_receiver_event(ev)
        for job in self.downlink.take_complete():
            self._decode_q.put(job)  # decoded by the node after the ground's decode latency
        self._poke(self.downlink, self._receiver_wake)
        if self.reverse is not None:
            self.reverse.wake()

    def _on_receiver_event(self, ev) -> None:
        rec = self._by_bundle[ev.bundle_id]
        if isinstance(ev, SectionProgress):  # the first words, read frame by frame
            text = self.downlink.texts.get(ev.bundle_id)
            if text is not None and text.words and rec.first_word_s is None:
                rec.first_word_s = self.env.now
        elif isinstance(ev, SectionDelivered):
            rec.section_delivered_s[ev.index] = self.env.now
            self._sections.setdefault(ev.bundle_id, []).append(ev.data)
            text = self.downlink.texts.get(ev.bundle_id)
            if ev.index == SectionKind.TEXT and text is not None:
                rec.text_strings, rec.text_error = text.strings, text.error
                rec.text_words = text.words
                if text.words and rec.first_word_s is None:
                    rec.first_word_s = self.env.now
        elif isinstance(ev, BundleDelivered):
            rec.delivered_s = self.env.now
        elif isinstance(ev, ReceiverGaveUp):
            rec.failed = f"receiver gave up with {ev.delivered_sections} sections"

    def _pull_reverse(self, now: float, budget: int) -> list[bytes]:
        del budget  # control frames are small; a frame over the MTU goes as several messages
        return self.downlink.poll_transmit(self.contacts.to_contact(now))

    def decoder(self) -> Iterator[simpy.Event]:
        """One decoder at the ground: each complete bundle waits for it, then the node
        decodes it after the ground profile's decode latency."""
        env = self.env
        while True:
            job = yield self._decode_q.get()
            yield env.timeout(self.scenario.receiver.decode_latency_s)
            self.downlink.decode([job])
            self._take_result(job.bundle_id, env.now)

    def _take_result(self, bid: int, now: float | None) -> None:
        rec = self._by_bundle[bid]
        res = self.downlink.results.get(bid)
        if res is None:
            return
        synthetic = self.codec.decoder is None
        if res.error:
            rec.decode_note = res.error
        if not (res.decoded or (synthetic and res.sections_delivered >= Container.IMAGE_SECTIONS)):
            return
        rec.decoded_sections = res.sections_delivered
        rec.decoded_s = now
        if synthetic:
            return
        if rec.index % self.scenario.decode_every:
            rec.decode_note = f"quality not sampled (decode_every={self.scenario.decode_every})"
            return
        # Simulation only: the original is at hand, so measure what the ground decoded.
        data = Container.from_sections(self._sections[bid]).to_bytes()
        rec.psnr_db, image = self.codec.quality(self._path(rec.index), data)
        rec.decoded_image = str(image)

    def _score_text(self) -> None:
        """Against the ground truth beside each original (ICDAR 2015; real codec only,
        images without ground truth get none): DET and E2E of the spotter on each decoded
        image and, for the same images, E2E of the spotter on the original (the ceiling);
        E2E of the words the text section carried (what the operator reads first) for
        every image whose text section landed."""
        if self.codec.decoder is None:
            return
        bundle_of = {rec.index: bid for bid, rec in self._by_bundle.items()}
        for rec in self.records:
            original = self._path(rec.index)
            if self.codec.ground_truth(original) is None:
                continue
            text = self.downlink.texts.get(bundle_of.get(rec.index, -1))
            if text is not None and not text.error:
                carried = [Word(np.asarray(w["quad"]), w["text"]) for w in text.words]
                _, rec.text_e2e_words = self.codec.text_match(original, carried)
            if rec.decoded_image is not None:
                rec.text_det, rec.text_e2e = self.codec.text_match(
                    original, self.codec.reads(Path(rec.decoded_image))
                )
                _, rec.text_e2e_original = self.codec.text_match(
                    original, self.codec.reads(original)
                )

    # --- protocol timers --------------------------------------------------------------------

    def _poke(self, node, wake: Signal) -> None:
        """Wake a node's timer process if its next deadline changed."""
        if node.next_timer() != self._armed.get(id(node)):
            wake.fire()

    def timers(self, node, wake: Signal, on_event: Callable,
               link: LinkDirection | None) -> Iterator[simpy.Event]:
        """Fire a node's protocol timers on contact time; ``wake`` re-arms the wait."""
        env, plan = self.env, self.contacts
        while True:
            deadline = self._armed[id(node)] = node.next_timer()
            at = math.inf if deadline is None else plan.from_contact(deadline)
            if at > env.now:
                yield wake.wait() if math.isinf(at) else wake.wait() | env.timeout(at - env.now)
                continue
            for ev in node.handle_timeout(max(deadline, plan.to_contact(env.now))):
                on_event(ev)
            if link is not None:
                link.wake()

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
        self.downlink.finish(self.contacts.to_contact(s.duration_s))
        for bid in pending:
            # Bundles still incomplete at the end: what arrived is decoded afterwards.
            self._take_result(bid, None)
            rec = self._by_bundle[bid]
            if rec.decoded_sections and rec.delivered_s is not None:
                rec.decode_note = "complete, but still waiting for the decoder at mission end"
            elif rec.decoded_sections:
                rec.decode_note = "partial at mission end, decoded afterwards"
        self._score_text()
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
            codec_name=self.codec.name, synthetic=self.codec.decoder is None,
        )
