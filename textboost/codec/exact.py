"""Integer-exact arithmetic that both ends compute to drive the entropy coder.

Learned codecs desynchronise when the encoder and decoder compute entropy parameters with
float differences of one ulp (CompressAI#279, tensorflow/compression#44). Everything here
is integer arithmetic carried in float64 (every intermediate is an integer below 2^53,
so BLAS may sum in any order, with or without FMA, on any thread count) or in int64:

* :class:`IntConv` — a convolution with int8 weights, integer bias and a per-channel
  fixed-point requantisation ``(acc + bias) * mult >> shift`` (TFLite style), clamped
  to uint8 for hidden layers or int16 for parameter outputs; computed as an explicit
  im2col matrix product, never by FFT or Winograd. The product runs in float32 (twice
  the speed) whenever its inputs bound every partial sum below 2^24, so that it is exact
  there too, and in float64 otherwise: the same integers either way.
* fixed-point formats: hidden activations in 1/16, latents ŷ and the parameters μ and
  log2 σ in 1/64.
* the rate parameter → per-channel log2 gain → quantisation step, through integer
  interpolation and a shipped table of 2^(k/64); no transcendental function runs on
  either end.
* log2 σ + log2 gain → index into the shipped integer CDF tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ACT_MAX",
    "HIDDEN_FRAC",
    "LATENT_FRAC",
    "N_SCALES",
    "PARAM_FRAC",
    "PARAM_MAX",
    "RATE_MAX",
    "SCALE_MIN_LEVEL",
    "IntConv",
    "dequantize_q6",
    "exact_dtype",
    "interp_gain_q6",
    "pixel_shuffle_nhwc",
    "scale_index",
    "scale_of_level",
    "step_q22",
]

HIDDEN_FRAC = 4  # hidden activations: uint8 counts of 1/16
LATENT_FRAC = 6  # ŷ given to the context networks: counts of 1/64
PARAM_FRAC = 6  # μ and log2 σ outputs: counts of 1/64
ACT_MAX = 255
PARAM_MAX = 2**15 - 1
RATE_MAX = 65535  # the rate parameter is a uint16 in the header

# Scale table: σ_i = 2^((i + SCALE_MIN_LEVEL) / 8), i = 0..N_SCALES-1, i.e. 0.105 .. 98.7
# in symbol units, 9 % apart (the CDF tables cost < 0.1 % rate at this spacing).
SCALE_LEVELS_PER_OCTAVE = 8
SCALE_MIN_LEVEL = -26
N_SCALES = 80

# round(2^(k/64) · 2^30), k = 0..63, computed with 60-digit mpmath and checked to be far
# from a rounding tie: a constant, so no platform's exp2 is ever trusted.
EXP2_FRAC_Q30 = np.array(
    [
        1073741824, 1085434106, 1097253708, 1109202018, 1121280436, 1133490379, 1145833280,
        1158310587, 1170923762, 1183674286, 1196563654, 1209593378, 1222764986, 1236080024,
        1249540052, 1263146652, 1276901417, 1290805962, 1304861917, 1319070932, 1333434672,
        1347954824, 1362633090, 1377471191, 1392470869, 1407633882, 1422962010, 1438457051,
        1454120821, 1469955159, 1485961921, 1502142985, 1518500250, 1535035634, 1551751076,
        1568648537, 1585730000, 1602997467, 1620452965, 1638098541, 1655936265, 1673968228,
        1692196547, 1710623359, 1729250827, 1748081133, 1767116489, 1786359126, 1805811301,
        1825475297, 1845353420, 1865448001, 1885761398, 1906295993, 1927054196, 1948038440,
        1969251188, 1990694927, 2012372174, 2034285470, 2056437387, 2078830522, 2101467502,
        2124350982,
    ],
    dtype=np.int64,
)  # fmt: skip


def scale_of_level(index: np.ndarray | int) -> np.ndarray:
    """σ (symbol units) of scale-table entry ``index`` (float; for building tables only)."""
    return np.exp2((np.asarray(index, dtype=np.float64) + SCALE_MIN_LEVEL) / 8.0)


def interp_gain_q6(anchors_q6: np.ndarray, rate: int) -> np.ndarray:
    """Per-channel log2 gain (1/64 units) for rate ``0..RATE_MAX``, exact integer lerp.

    ``anchors_q6`` has shape (K, M): K learned gain vectors from the lowest to the
    highest rate.
    """
    if not 0 <= rate <= RATE_MAX:
        raise ValueError(f"rate {rate} outside 0..{RATE_MAX}")
    anchors = anchors_q6.astype(np.int64)
    k = anchors.shape[0]
    pos = rate * (k - 1)
    j = min(pos // RATE_MAX, k - 2)
    f = pos - j * RATE_MAX
    num = anchors[j] * (RATE_MAX - f) + anchors[j + 1] * f
    return (num + RATE_MAX // 2) // RATE_MAX


def step_q22(log2_gain_q6: np.ndarray) -> np.ndarray:
    """Quantisation step Δ = 2^(−L/64) in units of 2^-22, exactly (int64)."""
    e = -np.asarray(log2_gain_q6, dtype=np.int64)
    q = e >> 6  # floor division by 64
    v = EXP2_FRAC_Q30[e & 63]
    shift = q - 8  # Δ·2^22 = v · 2^(q − 8)
    left = v << np.maximum(shift, 0)
    rs = np.maximum(-shift, 0)
    right = (v + ((np.int64(1) << rs) >> 1)) >> rs
    return np.where(shift >= 0, left, right)


def scale_index(logsigma_q6: np.ndarray, log2_gain_q6: np.ndarray) -> np.ndarray:
    """Scale-table index of σ_symbol = σ_y · gain, from log2 values in 1/64 units."""
    level = logsigma_q6.astype(np.int64) + log2_gain_q6
    level += 4 - 8 * SCALE_MIN_LEVEL
    level >>= 3  # floor division by 8
    return np.clip(level, np.int64(0), np.int64(N_SCALES - 1))


def dequantize_q6(mu_q6: np.ndarray, symbols: np.ndarray, step: np.ndarray) -> np.ndarray:
    """ŷ in 1/64 units: μ + s·Δ, rounded, clamped to int16 (step from :func:`step_q22`)."""
    s = symbols.astype(np.int64) * step
    s += 1 << 15
    s >>= 16
    return np.clip(s + mu_q6, np.int64(-PARAM_MAX), np.int64(PARAM_MAX))


F32_EXACT = float(1 << 24)  # float32 holds every integer below this exactly


def exact_dtype(x_max: float, l1_max: float) -> type:
    """float32 when inputs of magnitude ≤ ``x_max`` against weights whose columns sum to
    at most ``l1_max`` in magnitude keep every partial sum an integer below 2^24 (exact in
    any order of summation), else float64 (exact below 2^53)."""
    return np.float32 if x_max * l1_max < F32_EXACT else np.float64


def pixel_shuffle_nhwc(x: np.ndarray, r: int) -> np.ndarray:
    """Depth-to-space matching ``torch.nn.PixelShuffle`` (channel index c·r² + i·r + j)."""
    b, h, w, c = x.shape
    co = c // (r * r)
    x = x.reshape(b, h, w, co, r, r).transpose(0, 1, 4, 2, 5, 3)
    return x.reshape(b, h * r, w * r, co)


@dataclass(frozen=True)
class IntConv:
    """An exact integer convolution (stride 1, 'same' zero padding), NHWC."""

    weight: np.ndarray  # (k·k·C, O) float64 holding int8 values, tap-major: (kh, kw, C)
    bias: np.ndarray  # (O,) float64 integers, in accumulator units
    mult: np.ndarray  # (O,) float64 integers in [2^14, 2^15]
    shift: np.ndarray  # (O,) float64 powers of two: 2^shift
    half: np.ndarray  # (O,) 2^(shift − 1), the rounding offset
    kernel: int
    lo: int
    hi: int
    weight32: np.ndarray = field(init=False, repr=False)  # float32 copy (int8: exact)
    l1_max: float = field(init=False)  # the largest sum of |weights| into one output
    scale: np.ndarray = field(init=False, repr=False)  # mult · 2^-shift
    offset: np.ndarray = field(init=False, repr=False)  # (bias · mult + half) · 2^-shift

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight32", self.weight.astype(np.float32))
        object.__setattr__(self, "l1_max", float(np.abs(self.weight).sum(axis=0).max()))
        # Scaling by a power of two is exact, so acc · scale + offset is the integer
        # acc · mult + bias · mult + half (below 2^53) over 2^shift, rounded nowhere.
        object.__setattr__(self, "scale", self.mult / self.shift)
        object.__setattr__(self, "offset", (self.bias * self.mult + self.half) / self.shift)

    @classmethod
    def from_tables(
        cls, w: np.ndarray, b: np.ndarray, mult: np.ndarray, shift: np.ndarray, lo: int, hi: int
    ) -> IntConv:
        o, c, k, _ = w.shape
        return cls(
            weight=np.ascontiguousarray(
                w.transpose(2, 3, 1, 0).reshape(k * k * c, o), dtype=np.float64
            ),
            bias=b.astype(np.float64),
            mult=mult.astype(np.float64),
            shift=np.exp2(shift.astype(np.float64)),
            half=np.exp2(shift.astype(np.float64) - 1),
            kernel=k,
            lo=lo,
            hi=hi,
        )

    def select_inputs(self, index: np.ndarray | slice) -> IntConv:
        """The same layer as a matrix product over only the im2col inputs ``index`` (for
        callers that know the other inputs are zero: the sum is unchanged)."""
        w = np.ascontiguousarray(self.weight[index])
        return IntConv(w, self.bias, self.mult, self.shift, self.half, 1, self.lo, self.hi)

    @property
    def in_channels(self) -> int:
        return self.weight.shape[0] // (self.kernel * self.kernel)

    def dtype_for(self, x_max: float) -> type:
        """The exact product's dtype for inputs of magnitude ≤ ``x_max``."""
        return exact_dtype(x_max, self.l1_max)

    def columns(self, x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """im2col of ``x`` (B, H, W, C), optionally only at positions where ``rows`` is True.

        Tap-major (each tap's C channels side by side), so that it is built from k·k
        shifted copies of contiguous channel runs."""
        k = self.kernel
        if k == 1:
            cols = x
        else:
            _, h, w, _ = x.shape
            p = k // 2
            xp = np.zeros((x.shape[0], h + 2 * p, w + 2 * p, x.shape[3]), x.dtype)
            xp[:, p : p + h, p : p + w] = x
            taps = [xp[:, i : i + h, j : j + w] for i in range(k) for j in range(k)]
            cols = np.concatenate(taps, axis=-1)  # (B, H, W, k·k·C)
        if rows is not None:
            cols = cols[rows]
        return cols.reshape(-1, self.weight.shape[0])

    def matmul(self, cols: np.ndarray) -> np.ndarray:
        """Exact layer on im2col rows (n, C·k·k) → (n, O) float32 (integers of at most
        2^15 in magnitude: exact in float32).

        float32 ``cols`` are multiplied in float32: the caller chose that dtype with
        :meth:`dtype_for` from a bound on their magnitude."""
        return self.requantise(self.product(cols))

    def product(self, cols: np.ndarray) -> np.ndarray:
        """The accumulator ``cols @ weight`` (integers; in float32 for float32 ``cols``).

        Sums of products over disjoint input columns add up to the whole product exactly:
        every partial sum is bounded as the whole one is (:meth:`dtype_for`)."""
        return cols @ (self.weight32 if cols.dtype == np.float32 else self.weight)

    def requantise(self, acc: np.ndarray) -> np.ndarray:
        """(n, O) accumulator → the layer's outputs, float32 (see :meth:`matmul`)."""
        # ((acc + bias) · mult + half) / 2^shift in float64 (exact, see __post_init__),
        # floored into float32: integers beyond 2^24 may round there, but monotonically,
        # so they stay beyond [lo, hi] and the clamp gives the same integer.
        t = np.multiply(acc, self.scale, dtype=np.float64)
        t += self.offset
        out = np.floor(t, out=np.empty(t.shape, np.float32), casting="same_kind")
        return np.clip(out, np.float32(self.lo), np.float32(self.hi), out=out)

    def __call__(self, x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Apply to (B, H, W, C) integer-valued input; with ``rows`` → (n, O) at those sites."""
        x_max = float(np.abs(x).max()) if x.size else 0.0
        out = self.matmul(self.columns(x.astype(self.dtype_for(x_max), copy=False), rows))
        if rows is not None:
            return out
        b, h, w, _ = x.shape
        return out.reshape(b, h, w, -1)
