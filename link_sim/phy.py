"""Time on air of one frame: a plain bit rate, or the LoRa modem formula.

LoRa time on air follows Semtech AN1200.13 ("LoRa Modem Designer's Guide") and the SX1276
datasheet §4.1.1.7: symbol time ``2^SF / BW``; preamble ``n_preamble + 4.25`` symbols;
payload ``8 + max(ceil((8 PL - 4 SF + 28 + 16 CRC - 20 IH) / (4 (SF - 2 DE))) (CR + 4), 0)``
symbols, with DE (low data rate optimisation) on when a symbol lasts 16 ms or more.
SF12 / 125 kHz / CR 4/5 with a 51-byte payload gives 2.466 s on air.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LoraPhy", "RatePhy"]


@dataclass(frozen=True, slots=True)
class RatePhy:
    """``bits / rate`` plus a fixed per-frame overhead (preamble, sync, PTT key-up)."""

    rate_bps: float
    frame_overhead_s: float = 0.0

    def airtime_s(self, frame_bytes: int) -> float:
        return self.frame_overhead_s + 8 * frame_bytes / self.rate_bps


@dataclass(frozen=True, slots=True)
class LoraPhy:
    spreading_factor: int = 12
    bandwidth_hz: float = 125_000.0
    coding_rate: int = 1  # 1..4 → 4/5 .. 4/8
    preamble_symbols: int = 8
    explicit_header: bool = True
    crc: bool = True

    @property
    def symbol_s(self) -> float:
        return (1 << self.spreading_factor) / self.bandwidth_hz

    def airtime_s(self, frame_bytes: int) -> float:
        sf = self.spreading_factor
        de = 1 if self.symbol_s >= 0.016 else 0
        ih = 0 if self.explicit_header else 1
        num = 8 * frame_bytes - 4 * sf + 28 + 16 * int(self.crc) - 20 * ih
        n_payload = 8 + max(math.ceil(num / (4 * (sf - 2 * de))) * (self.coding_rate + 4), 0)
        return (self.preamble_symbols + 4.25 + n_payload) * self.symbol_s

    @property
    def rate_bps(self) -> float:
        """Equivalent bit rate of a 51-byte frame (for utilisation and rate policies)."""
        return 8 * 51 / self.airtime_s(51)
