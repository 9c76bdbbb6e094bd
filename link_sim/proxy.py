"""``python -m link_sim proxy``: a UDP relay that applies a scenario's channel in real time,
so a field trial is rehearsed on one machine over loopback.

    python -m link_sim proxy --scenario scenarios/rescue.yaml --listen 9100 --to 127.0.0.1:9000
    python -m uplink send photos/ --to 127.0.0.1:9100 ...     # the edge talks to the proxy
    python -m downlink receive --port 9000 ...                # the ground behind it

Datagrams to ``--listen`` go through the forward direction to ``--to``; the ground's answers
(to the proxy's own port) go through the reverse direction back to the address the last
forward datagram came from. The channel decisions are :mod:`link_sim.relay`'s (sans-IO);
this module only moves bytes and reads the clock. Scenario time starts when the proxy
does; ``--time-scale`` runs the channel that many times faster than the wall clock (the
nodes' own timers do not follow). Counters are printed on exit: ``--duration`` elapsed,
SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import select
import signal
import socket
import sys
import time
from pathlib import Path

from link_sim.relay import Relay
from link_sim.scenario import ScenarioError, load_scenario
from textboost.cli import add_version, prog_name

__all__ = ["ProxyDriver", "main"]

MAX_DATAGRAM = 65_535


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ScenarioError(f"--to {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9000")
    return host, int(port)


class ProxyDriver:
    """The socket side of the relay: two UDP sockets and a clock.

    Args:
        relay: the channel.
        listen: (host, port) the edge sends to.
        to: (host, port) of the ground.
        time_scale: scenario seconds per wall second.
    """

    def __init__(
        self, relay: Relay, listen: tuple[str, int], to: tuple[str, int], time_scale: float = 1.0
    ) -> None:
        self.relay = relay
        self.time_scale = time_scale
        self.edge = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.edge.bind(listen)
        self.ground = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.ground.bind((listen[0], 0))
        self.to = to
        self.edge_addr: tuple[str, int] | None = None
        self._t0 = time.monotonic()
        self._stop = False

    @property
    def port(self) -> int:
        return self.edge.getsockname()[1]

    def now(self) -> float:
        """Scenario seconds since the proxy started."""
        return (time.monotonic() - self._t0) * self.time_scale

    def stop(self, *_: object) -> None:
        self._stop = True

    def run(self, duration_s: float | None = None) -> None:
        """Relay until :meth:`stop` (a signal handler) or ``duration_s`` wall seconds."""
        end = None if duration_s is None else time.monotonic() + duration_s
        while not self._stop:
            now_wall = time.monotonic()
            if end is not None and now_wall >= end:
                break
            due = self.relay.next_due()
            wait = 0.2
            if due is not None:
                wait = min(wait, max(0.0, due / self.time_scale + self._t0 - now_wall))
            if end is not None:
                wait = min(wait, max(0.0, end - now_wall))
            try:
                readable, _, _ = select.select([self.edge, self.ground], [], [], wait)
            except InterruptedError:
                continue
            for sock in readable:
                try:
                    data, addr = sock.recvfrom(MAX_DATAGRAM)
                except OSError:
                    continue  # e.g. ICMP port unreachable from a peer not up yet
                self._on_datagram(sock, data, addr)
            self._flush()
        self._flush()

    def _on_datagram(self, sock: socket.socket, data: bytes, addr: tuple[str, int]) -> None:
        now = self.now()
        if sock is self.edge:
            self.edge_addr = addr
            self.relay.forward.feed(data, now)
        elif self.relay.reverse is None:
            self.relay.reverse_dropped += 1
        else:
            self.relay.reverse.feed(data, now)

    def _flush(self) -> None:
        now = self.now()
        for data in self.relay.forward.due(now):
            self._send(self.ground, data, self.to)
        if self.relay.reverse is not None:
            for data in self.relay.reverse.due(now):
                if self.edge_addr is not None:
                    self._send(self.edge, data, self.edge_addr)

    @staticmethod
    def _send(sock: socket.socket, data: bytes, addr: tuple[str, int]) -> None:
        with contextlib.suppress(OSError):  # the far end is not listening (yet): it is gone
            sock.sendto(data, addr)

    def close(self) -> None:
        self.edge.close()
        self.ground.close()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog_name("link_sim", "link-sim") + " proxy",
        description="Relay UDP datagrams through a scenario's channel in real time "
        "(rate, queue, delay, Gilbert-Elliott loss, contact windows, duty cycle).",
    )
    add_version(p)
    p.add_argument("--scenario", type=Path, required=True, help="scenario YAML file")
    p.add_argument("--listen", type=int, required=True, metavar="PORT",
                   help="UDP port the edge sends to (0: any free port, printed)")
    p.add_argument("--to", required=True, metavar="HOST:PORT", help="where the ground listens")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--seed", type=int, default=None,
                   help="loss-model seed (default: the scenario's 'seed', as run 0 simulates)")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="scenario seconds per wall second (default 1: real time)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after S wall seconds (default: until SIGINT/SIGTERM)")
    p.add_argument("--queue-bytes", type=int, default=1 << 16,
                   help="bytes that may wait for the transmitter per direction (default 65536)")
    p.add_argument("--json", action="store_true", help="counters on exit as one JSON object")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        scenario = load_scenario(args.scenario)
        to = _host_port(args.to)
        if not args.time_scale > 0:
            raise ScenarioError(f"--time-scale {args.time_scale}: expected a number > 0")
        if args.queue_bytes < 1:
            raise ScenarioError(f"--queue-bytes {args.queue_bytes}: expected at least 1")
        if args.seed is not None and args.seed < 0:
            raise ScenarioError(f"--seed {args.seed}: expected an integer >= 0")
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    relay = Relay(scenario, seed=args.seed, queue_bytes=args.queue_bytes)
    try:
        driver = ProxyDriver(relay, (args.bind, args.listen), to, args.time_scale)
    except OSError as exc:
        print(f"error: --listen {args.listen}: cannot bind ({exc.strerror})", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, driver.stop)
    signal.signal(signal.SIGTERM, driver.stop)
    seed = scenario.seed if args.seed is None else args.seed
    print(f"proxy {args.bind}:{driver.port} -> {to[0]}:{to[1]}: scenario {scenario.name}, "
          f"seed {seed}, time scale {args.time_scale:g}", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    try:
        driver.run(args.duration)
    finally:
        driver.close()
    counters = relay.counters()
    counters["wall_s"] = round(time.monotonic() - t0, 3)
    if args.json:
        print(json.dumps(counters))
    else:
        for name in ("forward", "reverse"):
            c = counters[name]
            print(f"{name}: " + ", ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in c.items()
            ))
        print(f"wall_s {counters['wall_s']}")
    return 0
