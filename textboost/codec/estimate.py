"""A stream's bytes at any rate, predicted from the entropy model of one real coding.

Coding an image at one rate shows the sender every y symbol's mean μ and log2 σ (the
exact path's parameters). At another rate the symbols and the scale-table indexes follow
from the same μ and σ by arithmetic alone: the rate only moves the quantisation step and
the gain added to log2 σ. Their information content in the shipped integer tables (escapes
at their Exp-Golomb length) is the predicted size, and z the same way from its
factorized tables. What it leaves out — contexts of the other rate's ŷ differ a little
from the coded rate's — is what the budget search's real codings correct
(:mod:`textboost.codec.budget`): the prediction is anchored on the real bytes of the
coding it came from, so it is exact there and drifts slowly away from it.

A prediction costs a few element-wise passes over the symbols, about 1/10 of a real
coding (``benchmarks/budget_search.py``).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from textboost.codec.coder import PRECISION, TableSet
from textboost.codec.exact import (
    N_SCALES,
    PARAM_FRAC,
    SCALE_MIN_LEVEL,
    interp_gain_q6,
    step_q22,
)

if TYPE_CHECKING:
    from textboost.codec.analysis import Analysis, LatentCodec

__all__ = ["RateModel", "code_and_model"]

# A third of the latent sites, drawn at random (fixed seed: the same sites for every
# rate), is enough to predict the bytes, in a third of the time; a regular stride is
# not (it picks whole columns, the border among them).
SAMPLE_SHARE = 3
MIN_SAMPLED = 3 * 256  # below this many sites, all of them
_ESC_FIXED = 6.0  # Exp-Golomb escape: 5 bits of length, 1 of sign, then the length itself


@dataclass(frozen=True)
class _Bits:
    """−log2 p of every table entry, padded to one matrix (tables × longest)."""

    cost: np.ndarray  # (tables · width,) float64, table-major
    radius: np.ndarray  # (tables,) int32
    width: int

    @classmethod
    def of(cls, tables: TableSet) -> _Bits:
        width = max(p.size for p in tables.pmfs)
        cost = np.zeros((len(tables.pmfs), width))
        for i, p in enumerate(tables.pmfs):
            cost[i, : p.size] = PRECISION - np.log2(p)
        return cls(cost.reshape(-1), tables.radius.astype(np.int32), width)

    def total(self, sym: np.ndarray, table: np.ndarray) -> float:
        """Bits of integer symbols ``sym`` coded with tables ``table`` (same shape)."""
        t = self.radius[table]
        over = np.abs(sym) - t
        esc = over > 0
        col = np.where(esc, 2 * t + 1, sym + t)
        bits = float(self.cost[table * self.width + col].sum())
        if esc.any():
            bits += float((_ESC_FIXED + np.floor(np.log2(over[esc]))).sum())
        return bits


_BITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _bits_of(codec: LatentCodec) -> tuple[_Bits, _Bits]:
    """The codec's tables as bit costs, built once per codec."""
    if codec not in _BITS:
        _BITS[codec] = (_Bits.of(codec.y_tables), _Bits.of(codec.z_tables))
    return _BITS[codec]


def _sample(sites: int) -> np.ndarray | slice:
    if sites < MIN_SAMPLED:
        return slice(None)
    rng = np.random.default_rng(sites)
    return np.sort(rng.choice(sites, sites // SAMPLE_SHARE, replace=False))


@dataclass
class RateModel:
    """The entropy model of one analysed image as one real coding saw it.

    ``predict(rate_q)``: the stream's bytes at another integer rate (the anchor's real
    bytes plus the change in estimated bits)."""

    residual: np.ndarray  # (P, M) y − μ of a sample of sites (float32)
    logsigma: np.ndarray  # (P, M) their log2 σ in 1/64, plus scale_index's rounding (int32)
    weight: float  # sites per sampled site
    z: np.ndarray  # (Pz, Cz) the analysis's z
    gain_anchors_q6: np.ndarray
    z_gain_anchors_q6: np.ndarray
    bits: tuple[_Bits, _Bits]
    anchor_rate_q: int
    anchor_bytes: int
    anchor_bits: float = 0.0

    def __post_init__(self) -> None:
        self.anchor_bits = self.estimate_bits(self.anchor_rate_q)

    def estimate_bits(self, rate_q: int) -> float:
        """Information content of z and y at ``rate_q`` in the shipped tables."""
        y_bits, z_bits = self.bits
        gain = interp_gain_q6(self.gain_anchors_q6, rate_q)
        inv_step = (2.0**22 / step_q22(gain)).astype(np.float32)
        sym = np.floor(self.residual * inv_step + np.float32(0.5)).astype(np.int32)
        level = (self.logsigma + gain.astype(np.int32)) >> 3  # floor division by 8
        table = np.clip(level, np.int32(SCALE_MIN_LEVEL), np.int32(SCALE_MIN_LEVEL + N_SCALES - 1))
        table -= np.int32(SCALE_MIN_LEVEL)
        z_step = step_q22(interp_gain_q6(self.z_gain_anchors_q6, rate_q)) * 2.0**-22
        z_sym = np.floor(self.z / z_step + 0.5).astype(np.int64)
        z_table = np.broadcast_to(np.arange(self.z.shape[-1]), self.z.shape)
        return self.weight * y_bits.total(sym, table) + z_bits.total(z_sym, z_table)

    def predict(self, rate_q: int) -> float:
        """Predicted bytes of the whole stream at ``rate_q`` (exact at the anchor)."""
        if rate_q == self.anchor_rate_q:
            return float(self.anchor_bytes)
        return self.anchor_bytes + (self.estimate_bits(rate_q) - self.anchor_bits) / 8


def code_and_model(codec: LatentCodec, an: Analysis, rate_q: int) -> tuple[bytes, RateModel]:
    """The `.tbx` bytes of ``an`` at ``rate_q`` and the rate model that coding saw."""
    b, h, w, m = an.y.shape
    mu = np.zeros((b * h * w, m), dtype=np.int64)
    logsigma = np.zeros((b * h * w, m), dtype=np.int64)
    starts = np.cumsum([0, *codec.cfg.groups])

    def observe(k: int, sites: np.ndarray, mu_k: np.ndarray, ls_k: np.ndarray) -> None:
        mu[sites, starts[k] : starts[k + 1]] = mu_k
        logsigma[sites, starts[k] : starts[k + 1]] = ls_k

    data = codec.encode_analysis(an, rate_q, observe)
    sample = _sample(mu.shape[0])
    mu, logsigma = mu[sample], logsigma[sample]
    model = RateModel(
        residual=(an.y.reshape(-1, m)[sample] - mu * 2.0**-PARAM_FRAC).astype(np.float32),
        logsigma=(logsigma + 4).astype(np.int32),  # scale_index rounds to the nearest 1/8
        weight=b * h * w / mu.shape[0],
        z=an.z.reshape(-1, an.z.shape[-1]),
        gain_anchors_q6=codec.gain_anchors_q6,
        z_gain_anchors_q6=codec.z_gain_anchors_q6,
        bits=_bits_of(codec),
        anchor_rate_q=rate_q,
        anchor_bytes=len(data),
    )
    return data, model
