"""Frame delimiting for byte-stream links (serial radios, KISS TNCs, TCP): SLIP, RFC 1055.

Message links (UDP, LoRa, Iridium SBD) carry one frame per message and need none of this.
A byte stream does not keep frame boundaries, so each frame is wrapped as
``END | escaped frame | END`` (END 0xC0; 0xC0 → 0xDB 0xDC and 0xDB → 0xDB 0xDD, as in
KISS). Cost: 2 bytes per frame plus about 1 byte in 128 for escapes on random data.
The deframer accepts any chunking, resynchronises at the next END after garbage, and
drops over-long frames with a count (a lost END must not make it buffer forever).
"""

from __future__ import annotations

__all__ = ["StreamDeframer", "slip_encode"]

END, ESC, ESC_END, ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD


def slip_encode(frame: bytes) -> bytes:
    """One frame as SLIP bytes, delimited on both sides."""
    body = frame.replace(bytes([ESC]), bytes([ESC, ESC_ESC])).replace(
        bytes([END]), bytes([ESC, ESC_END])
    )
    return bytes([END]) + body + bytes([END])


class StreamDeframer:
    """Feed stream bytes in any chunks; get whole frames back.

    Attributes:
        dropped: frames dropped for a bad escape or for exceeding ``max_frame_bytes``.
    """

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.dropped = 0
        self._buf = bytearray()
        self._escaped = False
        self._bad = False

    def feed(self, data: bytes) -> list[bytes]:
        """Returns: the frames completed by ``data`` (possibly none). Never raises."""
        out: list[bytes] = []
        for byte in data:
            if byte == END:
                if self._buf and not self._bad and not self._escaped:
                    out.append(bytes(self._buf))
                elif self._buf or self._bad:
                    self.dropped += 1
                self._buf.clear()
                self._escaped = self._bad = False
                continue
            if self._bad:
                continue
            if self._escaped:
                self._escaped = False
                if byte not in (ESC_END, ESC_ESC):
                    self._bad = True
                    continue
                byte = END if byte == ESC_END else ESC
            elif byte == ESC:
                self._escaped = True
                continue
            if len(self._buf) >= self.max_frame_bytes:
                self._bad = True
                self._buf.clear()
                continue
            self._buf.append(byte)
        return out
