"""Where a photo's frames go on a small-MTU link, and what the words cost against its picture.

For each photo of a scenario (the shipped codec at the scenario's rate, text on, streams from
the link_sim cache), the real sender cuts the bundle into frames and a real receiver reads
them in order on a clean link, as the ground node does: which frame completes the first
word, all words and the picture; the descriptor, header and word bytes before the first
word; and the times under a per-frame off-time duty cycle (each frame followed by
``airtime * (1/d - 1)`` of silence), where time is proportional to air time, so the ratio
of all words to the picture cannot go below the share of air time the word frames take.
Variants: the file name left out of the capture record (the scenario's ``send_name:
false``, the field's ``uplink.send_name``); ``policy: fifo``.

    python benchmarks/words_frames.py                       # scenarios/lora_eu868.yaml
    python benchmarks/words_frames.py scenarios/iridium_sbd.yaml --images 3
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from link_sim.build import build_phy  # noqa: E402
from link_sim.codec_service import CodecService, default_cache_dir  # noqa: E402
from link_sim.scenario import image_paths, link_config, load_scenario  # noqa: E402
from textboost.bitstream.container import Container  # noqa: E402
from textboost.protocol import LinkConfig, Receiver, Sender  # noqa: E402
from textboost.protocol.events import SectionProgress  # noqa: E402
from textboost.protocol.frames import Descriptor  # noqa: E402
from textboost.text.payload import read_prefix  # noqa: E402


def frames_of(sections: list[bytes], cfg: LinkConfig) -> list[bytes]:
    """First-pass frames of one bundle, as sent after a HELLO (the first photo's)."""
    s = Sender(cfg)
    s.submit(0, sections, 0.0)
    return s.poll_transmit(0.0)


def milestones(frames: list[bytes], cfg: LinkConfig, n_words: int) -> tuple[int, int, int]:
    """Indices of the frames after which the ground holds the first word, all words and
    the whole bundle."""
    r = Receiver(cfg, progress=True)
    first = every = whole = None
    for i, f in enumerate(frames):
        for e in r.receive(f, 0.0):
            if isinstance(e, SectionProgress) or getattr(e, "index", None) == 0:
                head = Container.parse_head(e.data)
                if head is not None:
                    words, _ = read_prefix(head[1], head[0].width, head[0].height)
                    if words and first is None:
                        first = i
                    if len(words) == n_words and every is None:
                        every = i
        if whole is None and r.is_complete(0):
            whole = i
    return first, every, whole


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", nargs="?", type=Path, default=ROOT / "scenarios/lora_eu868.yaml")
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--duty", type=float, default=0.01, help="per-frame off-time duty cycle")
    args = ap.parse_args()

    t0, c0 = time.perf_counter(), time.process_time()
    scenario = load_scenario(args.scenario)
    base = link_config(scenario)
    phy = build_phy(scenario.link.forward)
    codec = CodecService(default_cache_dir())
    policy = scenario.rate.fixed_policy()
    if policy is None:
        raise SystemExit(f"{args.scenario}: an adaptive rate; give a fixed one")
    print(f"{scenario.name}: MTU {base.mtu_bytes}, CRC-{base.crc_bits}, fragment "
          f"{base.fragment_bytes(0)} B, {phy.airtime_s(base.mtu_bytes):.2f} s a full frame; "
          f"per-frame off time at duty {args.duty:g}")
    print(f"{'photo':<14}{'variant':<12}{'bytes':>6}{'text':>5}{'words':>6}{'desc':>5}"
          f"{'head':>5}{'1st word@':>10}{'frames 1st/all/pic':>20}{'1st word':>9}"
          f"{'all words':>10}{'air share':>10}")
    for path in image_paths(scenario)[: args.images]:
        data = codec.encode(path, policy, text=True, name=scenario.send_name)
        other = codec.encode(path, policy, text=True, name=not scenario.send_name)
        variants = {"as sent": (data, base), "no name" if scenario.send_name else "name":
                    (other, base),
                    "fifo": (data, dataclasses.replace(base, policy="fifo"))}
        for name, (stream, cfg) in variants.items():
            c = Container.parse(stream)
            sections = c.to_sections()
            n_words = len(read_prefix(c.text, c.header.width, c.header.height)[0])
            desc = len(Descriptor.of(sections, list(range(len(sections))), cfg.crc_bits)
                       .to_bytes(cfg.crc_bits))
            head = len(sections[0]) - len(c.text)
            first_word = _first_word_bytes(c)
            frames = frames_of(sections, cfg)
            air = [phy.airtime_s(len(f)) for f in frames]

            def end_s(i: int, air: list[float] = air) -> float:
                return sum(air[:i]) / args.duty + air[i]

            first, every, whole = milestones(frames, cfg, n_words)
            print(f"{path.stem[:13]:<14}{name:<12}{len(stream):>6}{len(c.text):>5}{n_words:>6}"
                  f"{desc:>5}{head:>5}{desc + head + first_word:>10}"
                  f"{f'{first + 1}/{every + 1}/{whole + 1} of {len(frames)}':>20}"
                  f"{f'1/{end_s(whole) / end_s(first):.1f}':>9}"
                  f"{f'1/{end_s(whole) / end_s(every):.1f}':>10}"
                  f"{f'1/{sum(air) / sum(air[: every + 1]):.1f}':>10}")
    print(f"wall {time.perf_counter() - t0:.1f} s, CPU {time.process_time() - c0:.1f} s "
          "(encodes from the link_sim cache)")


def _first_word_bytes(c: Container) -> int:
    """Bytes of the text section up to the end of its first word."""
    for n in range(1, len(c.text) + 1):
        if read_prefix(c.text[:n], c.header.width, c.header.height)[0]:
            return n
    return 0


if __name__ == "__main__":
    main()
