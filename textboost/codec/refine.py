"""Encoder-side latent refinement: better latents for the same decoder (``effort`` > 0).

The decoder is fixed and a stream is defined by its integer symbols, so the sender may
choose y freely: starting from g_a(x), :func:`refine_y` runs Adam on the continuous y
for the real objective ``bpp + λ·255²·MSE`` through the frozen entropy model (the torch
image of the exact SCCTX layers) and g_s, at the rate the stream will use. Rounding is
relaxed by stochastic Gumbel annealing (SGA; Yang, Bamler and Mandt, "Improving Inference
for Neural Image Compression", NeurIPS 2020): each symbol u = (y − μ)/Δ is a Gumbel-softmax
sample between ⌊u⌋ and ⌈u⌉ with logits −atanh(distance)/τ, and τ anneals from 0.5 so that
the last iterations see almost hard quantisation. The refined y goes through the unchanged
exact coder (``Codec.code_latents`` rounds it), so refined streams decode bit-exactly with
today's decoder on every backend. z is kept as g_a/h_a gave it (y only).

Refinement needs torch; the sender's float backend (onnxruntime, tensorrt) may be any.
Sampling uses a fixed seed: the same image, rate and effort give the same bytes.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from textboost.bitstream.container import Container
from textboost.codec.budget import CLOSE_ENOUGH, RATE_RESOLUTION, BudgetSearch, Progress
from textboost.codec.exact import LATENT_FRAC, PARAM_FRAC, RATE_MAX, interp_gain_q6

if TYPE_CHECKING:
    from textboost.codec.analysis import Analysis, LatentCodec

__all__ = [
    "EFFORT_ITERATIONS",
    "MAX_EFFORT",
    "check_effort",
    "refine_analysis",
    "refine_to_budget",
    "torch_net",
]

# Adam iterations per effort level (0: no refinement, today's encoder, bit for bit). One
# iteration is a forward and backward pass of the SCCTX model and g_s at the coded size
# (seconds per megapixel per level: benchmarks/refine.py).
EFFORT_ITERATIONS = (0, 12, 40)
MAX_EFFORT = len(EFFORT_ITERATIONS) - 1
LEARNING_RATE = 0.01  # Adam on y in latent units (quantisation steps ≈ 0.3..3)
TAU_MAX = 0.5  # SGA's initial temperature (the paper's)
TAU_MIN = 0.05  # reached at the last iteration: near-hard rounding
WARMUP = 0.3  # fraction of the iterations at TAU_MAX before the exponential decay
# The objective's λ is the model's λ at the rate times this. The model's training λ is
# not the slope of its real R–D curve: at 0.03 bpp (Kodak, coded 2/3 size) the curve
# trades ≈ 2.7× more distortion per bit, so at the training λ refinement saves bytes that
# cost more PSNR than a higher rate gives back (kodim23, 40 iterations: −52 B, −0.04 dB
# at equal rate); at 2.5× it saves a few bytes and gains PSNR at once (−8 B, +0.05 dB).
LAMBDA_SCALE = 2.5
SEED = 0
# torch networks loaded for codecs on an exported backend, one per codec, freed with it
_NETS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def check_effort(effort: int) -> int:
    """``effort`` as an int in 0..MAX_EFFORT, or a one-line ValueError."""
    if isinstance(effort, bool) or not isinstance(effort, int | np.integer):
        raise ValueError(f"effort {effort!r}: expected an integer 0..{MAX_EFFORT}")
    if not 0 <= effort <= MAX_EFFORT:
        raise ValueError(f"effort {effort}: expected 0..{MAX_EFFORT} (0 = no refinement)")
    return int(effort)


def torch_net(codec: LatentCodec):
    """The torch network refinement runs through: the torch backend's own, else one loaded
    from the model file (needs torch; a one-line error without it)."""
    net = getattr(codec.transforms, "net", None)
    if net is not None:
        return net
    if codec in _NETS:
        return _NETS[codec]
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ValueError(
            "effort > 0 refines latents with torch, which is not installed here "
            "(the exported backends encode at effort 0; pip install torch for more)"
        ) from None
    from textboost.codec.backends import load_torch_net

    net = _NETS[codec] = load_torch_net(codec.model)
    return net


def tau_schedule(t: int, iterations: int) -> float:
    """SGA temperature at iteration ``t`` (0-based): TAU_MAX, then exponential decay that
    reaches TAU_MIN at the last iteration (the paper's shape, scaled to few iterations)."""
    t0 = WARMUP * iterations
    span = max(iterations - 1 - t0, 1.0)
    r = math.log(TAU_MAX / TAU_MIN) / span
    return min(TAU_MAX, TAU_MAX * math.exp(-r * (t - t0)))


def refine_analysis(codec: LatentCodec, an: Analysis, rate_q: int, effort: int) -> Analysis:
    """``an`` with y refined for integer rate ``rate_q`` at ``effort`` (0: ``an`` itself)."""
    iterations = EFFORT_ITERATIONS[check_effort(effort)]
    if iterations == 0:
        return an
    y = refine_y(codec, an, rate_q, iterations)
    return replace(an, y=y)


def refine_y(
    codec: LatentCodec, an: Analysis, rate_q: int, iterations: int, lmbda_scale: float | None = None
) -> np.ndarray:
    """SGA refinement of ``an.y`` (NHWC float64) at ``rate_q``; returns the new y.

    The objective's λ is the model's λ at this rate times ``lmbda_scale`` (default
    ``LAMBDA_SCALE``)."""
    import torch

    net = torch_net(codec)
    dev = next(net.parameters()).device
    coded = an.coded if an.coded is not None else an.image
    ch, cw = coded.shape[:2]
    x = coded.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    x = torch.from_numpy(np.ascontiguousarray(x)).to(dev)
    # ẑ as the stream carries it; its hyper features stay fixed during refinement
    hyper_np = codec.hyper(codec.quantise_z(an.z, rate_q), rate_q)  # exact, NHWC
    gain_q6 = interp_gain_q6(codec.gain_anchors_q6, rate_q)
    scale = LAMBDA_SCALE if lmbda_scale is None else lmbda_scale
    lam = codec.cfg.lmbda(rate_q / RATE_MAX) * scale
    gen = torch.Generator(device=dev).manual_seed(SEED)
    for p in net.parameters():
        p.requires_grad_(False)
    hyper = torch.from_numpy(hyper_np.transpose(0, 3, 1, 2).astype(np.float32)).to(dev)
    y0 = torch.from_numpy(an.y.transpose(0, 3, 1, 2).astype(np.float32)).to(dev)
    y = y0.clone().requires_grad_(True)
    gain = torch.from_numpy(gain_q6.astype(np.float32)).to(dev)
    opt = torch.optim.Adam([y], lr=LEARNING_RATE)
    pixels = ch * cw
    with torch.enable_grad():
        for t in range(iterations):
            tau = tau_schedule(t, iterations)
            bits, y_hat = _relaxed_latents(net, y, hyper, gain, tau, gen)
            x_hat = net.g_s(y_hat)[..., :ch, :cw]
            loss = bits / pixels + lam * 255**2 * torch.mean((x_hat - x) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return y.detach().cpu().numpy().transpose(0, 2, 3, 1).astype(np.float64)


def _relaxed_latents(net, y, hyper, gain_q6, tau: float, gen):
    """(bits of y under the entropy model, ŷ in latent units) with SGA-relaxed symbols.

    The SCCTX pass of ``SCCTX.forward``: per channel group, anchors first, then
    non-anchors with their spatial context; contexts see the relaxed ŷ (gradients pass
    the integer layers straight through)."""
    import torch

    from textboost.codec.entropy_models import anchor_mask, gaussian_likelihood, sigma_of

    sc = net.scctx
    _, _, h, w = y.shape
    anchors = anchor_mask(h, w, y.device)
    a_f = anchors.to(y.dtype)
    parts: list[torch.Tensor] = []
    bits = y.new_zeros(())
    start = 0
    for k, g in enumerate(sc.groups):
        sl = slice(start, start + g)
        hyp = hyper[:, 2 * start : 2 * (start + g)]
        gk = gain_q6[sl][None, :, None, None]
        step = torch.exp2(-gk / 64)
        yk = y[:, sl]
        ch = sc.channel_context(k, torch.cat(parts, dim=1)) if k > 0 else None
        mu_a, ls_a = sc.params(k, hyp, ch, torch.zeros_like(hyp[:, : 2 * g]))
        mu_a = mu_a * 2.0**-PARAM_FRAC
        s_a = sga_round((yk - mu_a) / step, tau, gen)
        ya_q6 = (mu_a + s_a * step) * 2.0**LATENT_FRAC
        sp = sc.spatial_context(k, ya_q6 * a_f)
        mu_n, ls_n = sc.params(k, hyp, ch, sp)
        mu_n = mu_n * 2.0**-PARAM_FRAC
        s_n = sga_round((yk - mu_n) / step, tau, gen)
        mu = torch.where(anchors, mu_a, mu_n)
        s = torch.where(anchors, s_a, s_n)
        ls = torch.where(anchors, ls_a, ls_n)
        p = gaussian_likelihood(s, sigma_of(ls, gk))
        bits = bits - torch.log2(p).sum()
        parts.append((mu + s * step) * 2.0**LATENT_FRAC)
        start += g
    return bits, torch.cat(parts, dim=1) * 2.0**-LATENT_FRAC


def sga_round(u, tau: float, gen, eps: float = 1e-5):
    """One SGA sample of ``u`` rounded: a Gumbel-softmax choice between ⌊u⌋ and ⌈u⌉ with
    logits −atanh(distance)/τ, relaxed at temperature τ (differentiable in u)."""
    import torch

    lo = torch.floor(u).detach()
    d_lo = (u - lo).clamp(eps, 1 - eps)
    d_hi = (1 - (u - lo)).clamp(eps, 1 - eps)
    logits = torch.stack([-torch.atanh(d_lo) / tau, -torch.atanh(d_hi) / tau], dim=-1)
    g = torch.rand(logits.shape, generator=gen, device=u.device, dtype=u.dtype)
    gumbel = -torch.log(-torch.log(g.clamp_min(1e-20)) + 1e-20)
    w = torch.softmax((logits + gumbel) / tau, dim=-1)
    return lo + w[..., 1]


def refine_to_budget(
    codec: LatentCodec,
    an: Analysis,
    data: bytes,
    budget: int,
    effort: int,
    progress: Progress | None = None,
) -> bytes:
    """The budget search's stream ``data`` or a refined one, whichever decodes better.

    y is refined at the scale and rate the search picked; refined streams usually come
    out a little smaller, so the rate is searched again on real bytes within
    ``RATE_BRACKET`` of it (up when the refined stream fits, down when it overflows).
    The refined candidate replaces ``data`` only when its PSNR (at the coded size, as
    the search compares) is higher, so effort never costs quality and never exceeds the
    budget. A stream that keeps only some y groups (the smallest scale's floor) is
    returned as it is.
    """
    iterations = EFFORT_ITERATIONS[check_effort(effort)]
    c = Container.parse(data)
    if iterations == 0 or len(c.groups) < codec.n_groups:
        return data
    hd = c.header
    s = BudgetSearch(codec, budget, progress)
    if hd.scale != an.scale:
        s.report("analyse", an, size=hd.coded_size)
        an = codec.analyse_smaller(an, hd.scale)
    s.report("refine", an, rate=hd.rate / RATE_MAX, iterations=iterations)
    refined = replace(an, y=refine_y(codec, an, hd.rate, iterations))
    cand = _fit_near(s, refined, hd.rate)
    if cand is None:
        return data
    ref = an.coded if an.coded is not None else an.image
    if s.compare(cand, ref, refined) > s.compare(data, ref, an):
        return cand
    return data


# Rates searched around the picked one: bytes grow ≈ e^(2.4·rate) (Kodak, rate 0 → 1:
# 0.016 → 0.176 bpp), so ±2048 is ±8 % bytes, more than refinement moves them.
RATE_BRACKET = 2048


def _fit_near(s: BudgetSearch, an: Analysis, rate_q: int) -> bytes | None:
    """The highest-rate stream of ``an`` within the budget and ``RATE_BRACKET`` of
    ``rate_q`` (None when none fits), by bisection on real bytes."""
    n = s.codec.n_groups
    budget = s.budget
    close = budget - CLOSE_ENOUGH * budget
    first = s.encode(an, rate_q, n)
    if len(first) <= budget:
        lo, best, hi = rate_q, first, min(RATE_MAX, rate_q + RATE_BRACKET)
        if hi == lo or len(first) >= close:
            return first
        top = s.encode(an, hi, n)
        if len(top) <= budget:
            return top
    else:
        hi, lo = rate_q, max(0, rate_q - RATE_BRACKET)
        best = s.encode(an, lo, n)
        if len(best) > budget:
            return None
    while hi - lo > RATE_RESOLUTION and len(best) < close:
        mid = (lo + hi) // 2
        d = s.encode(an, mid, n)
        if len(d) <= budget:
            lo, best = mid, d
        else:
            hi = mid
    return best
