"""The ground service in the test's process, for tests that play the vehicle themselves
with a protocol ``Sender`` on a real UDP socket: ``DownlinkService`` on a thread (it owns
its SQLite state), the vehicle's socket, the send-until-acknowledged loop, and waiting for
what the ground writes."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from downlink.service import DownlinkService
from textboost.bitstream.container import Container
from textboost.field.config import load_field_config
from textboost.protocol import LinkConfig, Sender


class Ground:
    """``downlink serve``'s service on ``config``, run on a thread for up to ``run_s``."""

    def __init__(self, config: Path, web: str | None = None, run_s: float = 60.0) -> None:
        self.svc = DownlinkService(load_field_config(config, need="downlink"), web=web)
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.svc.run, args=(self.stop_ev, run_s))
        self.thread.start()

    @property
    def address(self) -> tuple[str, int]:
        """Where the ground listens (``downlink.listen``)."""
        host, port = self.svc.cfg.listen.rsplit(":", 1)
        return host, int(port)

    def vehicle_socket(self) -> socket.socket:
        """A UDP socket connected to the ground, reads timing out after 50 ms."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.05)
        s.connect(self.address)
        return s

    def stop(self) -> None:
        self.stop_ev.set()
        self.thread.join(10)
        self.svc.close()


def send(s: socket.socket, frames: list[bytes]) -> None:
    """``frames`` on the connected socket ``s``, 1 ms apart; with the ground down they are
    lost, as over the air."""
    for f in frames:
        with contextlib.suppress(ConnectionRefusedError):
            s.send(f)
        time.sleep(0.001)


def until_acked(s: socket.socket, sender: Sender, timeout_s: float = 15.0) -> list:
    """Answer NAKs and re-send EOFs until the sender has nothing in flight; returns the
    sender's events that name a bundle (its acknowledgements)."""
    acked: list = []
    end = time.monotonic() + timeout_s
    while sender.active_bundles and time.monotonic() < end:
        try:
            acked += [e for e in sender.receive(s.recv(2048), 0.0) if hasattr(e, "bundle_id")]
        except (TimeoutError, ConnectionRefusedError):
            sender.handle_timeout(1e9)  # re-send EOF now: its answer is a NAK or the FIN
        send(s, sender.poll_transmit(0.0))
    assert not sender.active_bundles, "not acknowledged in time"
    return acked


def wait_for(cond: Callable[[], object], timeout_s: float = 20.0, poll_s: float = 0.05) -> None:
    """Poll ``cond`` until it is true; fail the test after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(poll_s)


def submitted(
    link: LinkConfig, epoch: int, bundle_id: int, data: bytes
) -> tuple[Sender, list[bytes]]:
    """A vehicle's ``Sender`` (``epoch``) with the `.tbx` ``data`` as bundle ``bundle_id``,
    and the frames it sends first."""
    sender = Sender(link, epoch=epoch)
    sender.submit(bundle_id, Container.parse(data).to_sections(), 0.0)
    return sender, sender.poll_transmit(0.0)
