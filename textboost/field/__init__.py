"""Field mode: what the UDP drivers and the field services of ``uplink`` and ``downlink``
share — the socket and loop helpers (:mod:`.udp`), the one config schema of ``field.yaml``
(:mod:`.config`), the JSONL event log (:mod:`.eventlog`), files written whole or not at all
(:mod:`.durable`) and the ``serve`` subcommand (:mod:`.serve`). docs/field.md."""

from textboost.field.udp import TimedNode, TokenBucket, UdpEndpoint, parse_host_port, wait_and_fire

__all__ = ["TimedNode", "TokenBucket", "UdpEndpoint", "parse_host_port", "wait_and_fire"]
