"""A UDP relay on loopback that loses a seeded share of datagrams in each direction, for
transport tests over real sockets (loopback itself never loses anything). Datagrams to
:attr:`port` go to ``to``; the answers come back to whoever sent the latest one."""

from __future__ import annotations

import selectors
import socket
import threading

import numpy as np


class LossyRelay:
    def __init__(self, to: tuple[str, int], loss: float, seed: int = 0) -> None:
        self.to, self.loss = to, loss
        self.rng = np.random.default_rng(seed)
        self.near = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the sender's side
        self.near.bind(("127.0.0.1", 0))
        self.far = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # towards ``to``
        self.far.bind(("127.0.0.1", 0))
        self.client: tuple[str, int] | None = None
        self.passed = {"forward": 0, "reverse": 0}
        self.lost = {"forward": 0, "reverse": 0}
        self.sniffed: list[bytes] = []  # every forward datagram, lost or not
        self.sniffed_reverse: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.near.getsockname()[1]

    def _pass(self, direction: str) -> bool:
        if self.rng.random() < self.loss:
            self.lost[direction] += 1
            return False
        self.passed[direction] += 1
        return True

    def _run(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.near, selectors.EVENT_READ)
            sel.register(self.far, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in sel.select(0.05):
                    try:
                        data, addr = key.fileobj.recvfrom(65535)
                    except OSError:
                        continue
                    if key.fileobj is self.near:
                        self.client = addr
                        self.sniffed.append(data)
                        if self._pass("forward"):
                            self.far.sendto(data, self.to)
                    else:
                        self.sniffed_reverse.append(data)
                        if self.client is not None and self._pass("reverse"):
                            self.near.sendto(data, self.client)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.near.close()
        self.far.close()
