"""A scenario in the words a planner checks it by: link, channel, contacts, sender, images,
protocol, receiver, run and targets, as (group, [(name, value)]) rows for the report."""

from __future__ import annotations

from link_sim.scenario import Direction, Scenario, image_paths

__all__ = ["duration", "scenario_parameters"]

Rows = list[tuple[str, str]]


def duration(s: float) -> str:
    """Seconds as a planner reads them: 46.6 s, 12.5 min, 3.3 h."""
    if s != s:  # NaN
        return "–"
    if abs(s) < 120:
        return f"{s:.1f} s"
    if abs(s) < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _g(x: float) -> str:
    return f"{x:g}"


def _direction(d: Direction) -> Rows:
    if d.lora is not None:
        lo = d.lora
        phy = (f"LoRa SF{lo.spreading_factor} / {lo.bandwidth_hz // 1000} kHz, "
               f"CR 4/{4 + lo.coding_rate}")
    else:
        phy = f"{_g(d.rate_bps or 0)} bit/s"
    delay = duration(d.delay_s) if d.delay_s >= 0.1 else f"{d.delay_s * 1e3:g} ms"
    rows = [("PHY", phy), ("frame overhead", f"{_g(d.frame_overhead_s)} s"),
            ("one-way delay", delay), ("MTU", f"{d.mtu_bytes} B")]
    loss = [f"BER {_g(d.ber)}"] if d.ber else []
    if d.burst is not None:
        b = d.burst
        bad = b.p / (b.p + b.r)
        mean_loss = (1 - bad) * b.loss_good + bad * b.loss_bad
        loss.append(f"Gilbert–Elliott p {_g(b.p)} r {_g(b.r)}, loss {_g(b.loss_good)}/"
                    f"{_g(b.loss_bad)} (good/bad): {mean_loss:.1%} of frames on average, "
                    f"bursts of {1 / b.r:.1f} frames")
    rows.append(("channel loss", "; ".join(loss) or "none"))
    if d.duty_cycle is not None:
        dc = d.duty_cycle
        how = (f"sliding window {duration(dc.window_s)}" if dc.mode == "sliding"
               else f"off after each frame for {1 / dc.fraction - 1:g}× its airtime")
        rows.append(("duty cycle", f"{dc.fraction:.1%} ({how})"))
    if d.sessions is not None:
        ss = d.sessions
        rows.append(("sessions", f"setup {_g(ss.setup_s)} s, gap {_g(ss.gap_s)} s"))
    return rows


def _contacts(s: Scenario, windows: list[tuple[float, float]] | None) -> str:
    spec = s.link.forward.contacts
    if windows is None:
        return "always up"
    total = sum(b - a for a, b in windows)
    kind = "SGP4 passes from a TLE" if spec is not None and spec.kind == "tle" else "windows"
    return (f"{len(windows)} {kind}, {duration(total)} open in {duration(s.duration_s)} "
            f"({total / s.duration_s:.1%})")


def scenario_parameters(
    s: Scenario, windows: list[tuple[float, float]] | None
) -> list[tuple[str, Rows]]:
    src = s.images
    n_files = len(image_paths(s))
    source = f"set {src.set}" if src.set is not None else f"folder {src.folder}"
    cap = src.capture
    rate = s.rate
    rate_text = {
        "rate": lambda: f"codec rate {_g(rate.rate or 0)}",
        "bpp": lambda: f"{_g(rate.bpp or 0)} bpp (best stream within the budget)",
        "bytes": lambda: f"≤ {rate.max_bytes} B per image",
        "adaptive": lambda: f"adaptive, {rate.min_bytes}–{rate.max_bytes} B per image",
    }[rate.policy]()
    images: Rows = [
        ("source", f"{source} ({n_files} file{'s' * (n_files != 1)})"),
        ("captures", f"{cap.count}, every {duration(cap.interval_s)} from {_g(cap.start_s)} s"),
        ("rate", rate_text),
        ("text path", "on: words spotted on board go first" if s.text_path else "off"),
    ]
    if s.decode_every > 1:
        images.append(("quality sampled", f"every {s.decode_every}th image"))
    snd = s.sender
    stages = ", ".join(f"{k} {_g(v)}" for k, v in snd.encode_latency_s[snd.backend].items())
    sender: Rows = [
        ("device", f"{snd.device} ({snd.backend})"),
        ("encode", f"{snd.encode_s:.2f} s per image ({stages})"),
        ("storage", f"{snd.storage_bytes:,} B, drops {snd.drop_policy}"),
        ("in flight", f"{snd.max_in_flight} image(s)"),
    ]
    link = s.link
    forward = [*_direction(link.forward), ("contacts", _contacts(s, windows))]
    if link.reverse is None:
        reverse: Rows = [("reverse", "none: one-way link, no ARQ")]
    else:
        reverse = _direction(link.reverse)
        rc = link.reverse.contacts
        reverse.append(("contacts", "always up" if rc is None or rc.kind == "always"
                        else rc.kind.replace("_", " ")))
        reverse.append(("half duplex", "yes: one radio channel, data and NAKs take turns"
                        if link.half_duplex else "no"))
    p = s.protocol
    fec = f"RS k {p.fec_k} m {p.fec_m}" if p.fec_m else "none"
    protocol: Rows = [
        ("ARQ", s.arq), ("FEC", fec), ("MTU", f"{p.mtu_bytes} B"), ("order", s.policy),
        ("CRC", f"{p.crc_bits} bit"),
        ("timers", f"RTO {_g(p.rto_s)} s, NAK {_g(p.nak_timeout_s)} s, {p.max_retries} retries"),
    ]
    ground: Rows = [
        ("receiver", f"{s.receiver.backend}, decode {_g(s.receiver.decode_latency_s)} s"),
        ("mission", f"{duration(s.duration_s)}, seed {s.seed}"),
    ]
    groups = [("Images", images), ("Sender", sender), ("Forward link", forward),
              ("Reverse link", reverse), ("Protocol", protocol), ("Ground and run", ground)]
    t = s.targets
    if t is not None:
        targets: Rows = []
        if t.deadline_s is not None:
            targets.append(("photo deadline", f"decoded ≤ {duration(t.deadline_s)} after capture"))
        if t.text_deadline_s is not None:
            targets.append(("words deadline",
                            f"at the ground ≤ {duration(t.text_deadline_s)} after capture"))
        if t.min_delivered_share is not None:
            targets.append(("delivered", f"≥ {t.min_delivered_share:.0%} of captured"))
        if t.min_words_f1 is not None:
            targets.append(("words F1", f"≥ {t.min_words_f1:g}"))
        groups.append(("Targets", targets))
    return groups
