"""Stage 2 of the paper (§4.3, Eq. 8): train the fusion block on a frozen codec.

The codec does not change, so its output is computed once. :func:`build_cache` writes
one ``.npz`` per (image, bpp): the original, the decoded image of
``Codec.encode_to_budget(img, bpp=b)`` at a bpp drawn log-uniformly from the product's
range, the guidance map the receiver would render (the spotter on the original, as the
sender runs it, then ``select_words`` and ``render_guidance``), the ground-truth words
and the text mask m (their quads filled). The spotted words are kept too, so the
guidance can be re-rendered without re-spotting. Existing files are skipped: the
build resumes, and stops after ``cache_minutes``.

Training images: synthetic scene text (``synth_text``) on the photo sets and the real
plates of OpenALPR US. OpenALPR EU/BR, ICDAR 2015 and Kodak are the evaluation sets
and are refused. One image in ``heldout_mod`` (by a hash of its name) is never trained
on: :func:`evaluate` measures the block there on whole images through the runtime path.

loss = λ·(MSE(x, x̂) + α·MSE(m⊙x, m⊙x̂)) on random crops (most centred on text), with
x and x̂ in 8-bit levels: λ = 255² is the constant scale of Eq. 8 (the rate term is a
constant and drops out), so the logged loss reads in squared levels.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from textboost.fusion.model import FusionBlock
from textboost.settings.load import load
from textboost.text.words import Word
from textboost.train import run_state
from textboost.train.word_cache import scale_to, words_arrays

__all__ = [
    "Stage2Config", "Stage2Trainer", "build_cache", "cache_files", "evaluate", "fusion_loss",
    "psnr_gains", "run_eval",
]  # fmt: skip

EVAL_SETS = ("kodak", "icdar2015", "openalpr_eu", "openalpr_br")  # never train on these
LMBDA = 255.0**2


@dataclass
class Stage2Config:
    out_dir: str
    cache_dir: str
    photo_dirs: list[str] = field(default_factory=list)  # backgrounds of the synthetic text
    plate_dirs: list[str] = field(default_factory=list)  # OpenALPR-format annotated photos
    codec: str | None = None  # model file; None: the shipped default
    synth_images: int = 250
    synth_seed: int = 11
    rates_per_image: int = 1
    bpp_range: tuple[float, float] = (0.01, 0.06)
    max_side: int = 768  # images are scaled to this long side before coding
    heldout_mod: int = 10  # 1 image in this many is held out (by name)
    cache_minutes: float = 25.0
    channels: int = 16
    steps: int = 6000
    batch_size: int = 8
    crop: tuple[int, int] = (128, 192)  # crop side, uniform per batch
    p_text_crop: float = 0.8  # share of crops centred on a text pixel
    real_share: float | None = (
        None  # share of crops from real (non-synthetic) images; None: by count
    )
    lr: float = 1e-3
    lr_drop_at: float = 0.7  # fraction of steps after which lr is divided by 10
    alpha: float = 10.0
    clip_grad: float = 1.0
    seed: int = 0
    threads: int = 2
    checkpoint_every: int = 250

    def __post_init__(self) -> None:
        self.bpp_range = tuple(self.bpp_range)
        self.crop = tuple(self.crop)
        for d in [*self.photo_dirs, *self.plate_dirs]:
            if any(s in Path(d).as_posix().lower() for s in EVAL_SETS):
                raise ValueError(f"{d}: an evaluation set, never train on it")
        if not 0 < self.bpp_range[0] <= self.bpp_range[1]:
            raise ValueError(f"bpp_range {self.bpp_range}: expected 0 < lo <= hi")
        if not 16 <= self.crop[0] <= self.crop[1]:
            raise ValueError(f"crop {self.crop}: expected 16 <= lo <= hi")

    @classmethod
    def from_file(cls, path: str | Path) -> Stage2Config:
        """Raises: ConfigError (a ValueError), one line naming the file and the setting."""
        return load(path, cls, "stage-2 settings")


def is_heldout(name: str, mod: int) -> bool:
    return zlib.crc32(name.encode()) % mod == 0


# -- the cache ----------------------------------------------------------------------------


def _plate_items(dirs: list[str]) -> list[tuple[str, Path]]:
    items = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise FileNotFoundError(f"plate folder {d} does not exist")
        items += [(f"{d.name}_{p.stem}", p) for p in sorted(d.glob("*.txt")) if p.stem != "README"]
    return items


def _read_plate(txt: Path) -> tuple[np.ndarray, list[Word]]:
    """An OpenALPR image and its plate (``image x y w h PLATE``) as one word."""
    from textboost.codec.image import load_image

    rows = [r.split("\t") for r in txt.read_text().splitlines() if r.count("\t") >= 5]
    if not rows:
        raise ValueError(f"{txt}: no plate annotation")
    words = []
    for parts in rows:
        x, y, w, h = map(float, parts[1:5])
        quad = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
        words.append(Word(quad, parts[5].strip(), 1.0))
    return load_image(txt.with_name(rows[0][0])), words


def build_cache(cfg: Stage2Config, minutes: float | None = None, progress: bool = True) -> dict:
    """Encode, decode, spot and render every training image once; resumes and time-boxes."""
    from textboost.codec.api import BudgetError
    from textboost.codec.image import psnr_db
    from textboost.pipeline.api import Pipeline
    from textboost.text.filter import select_words
    from textboost.text.render import render_guidance
    from textboost.train.synth_text import SceneTextGenerator, SynthConfig, text_mask

    torch.set_num_threads(cfg.threads)
    cache = Path(cfg.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    codec = Pipeline.load(cfg.codec, fusion=False)
    flt = codec.text_filter
    gen = (
        SceneTextGenerator(cfg.photo_dirs, SynthConfig(max_side=cfg.max_side))
        if cfg.synth_images and cfg.photo_dirs
        else None
    )
    synth = [(f"synth{cfg.synth_seed}_{k:05d}", k) for k in range(cfg.synth_images if gen else 0)]
    plates = _plate_items(cfg.plate_dirs)
    # Interleave, so that a build cut short by its time box still holds both kinds.
    order: list[tuple[str, object]] = []
    for i in range(max(len(synth), len(plates))):
        order += synth[i : i + 1] + plates[i : i + 1]
    deadline = time.monotonic() + 60 * (cfg.cache_minutes if minutes is None else minutes)
    done = made = 0
    lo, hi = cfg.bpp_range
    bar = tqdm(order, desc="stage2 cache", dynamic_ncols=True, disable=not progress)
    for name, src in bar:
        rng = np.random.default_rng([cfg.synth_seed, zlib.crc32(name.encode())])
        bpps = np.exp(rng.uniform(math.log(lo), math.log(hi), cfg.rates_per_image))
        paths = [cache / f"{name}_r{j}.npz" for j in range(cfg.rates_per_image)]
        if all(p.exists() for p in paths):
            done += len(paths)
            continue
        if time.monotonic() > deadline:
            break
        if isinstance(src, int):
            s = gen.generate(cfg.synth_seed, src)
            img, gt, source = s.image, s.words, f"synth:{s.photo}"
        else:
            img, gt = _read_plate(src)
            img, gt = scale_to(img, gt, cfg.max_side)
            source = f"plate:{src.parent.name}/{src.stem}"
        h, w = img.shape[:2]
        mask = text_mask(select_words(gt, w, h, flt), w, h)  # the paper's T-filtered boxes
        for j, (p, b) in enumerate(zip(paths, bpps, strict=True)):
            if p.exists():
                continue
            try:  # as the product sends it: spotted, filtered, text bytes in the budget
                data = codec.encode_to_budget(img, bpp=float(b))
            except BudgetError:
                continue
            dec = codec.decode(data, fusion=False)
            sent = codec.words(data)  # as the receiver reads them (quantised quads)
            guidance = render_guidance(sent, w, h)
            arrays = {
                "original": img,
                "decoded": dec,
                "guidance": (guidance * 255 + 0.5).astype(np.uint8),
                "mask": mask.astype(np.uint8),
                "bpp": np.float32(len(data) * 8 / (w * h)),
                "target_bpp": np.float32(b),
                "psnr": np.float32(psnr_db(dec, img)),
                "source": np.array(source),
                "rate_index": np.int32(j),
                **words_arrays("gt", gt),
                **words_arrays("sent", sent),
            }
            tmp = p.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, **arrays)
            tmp.replace(p)
            made += 1
        bar.set_postfix(made=made)
    bar.close()
    info = {"files": len(list(cache.glob("*_r*.npz"))), "made": made, "skipped": done}
    info["complete"] = info["files"] >= len(order) * cfg.rates_per_image
    return info


def cache_files(cfg: Stage2Config, heldout: bool) -> list[Path]:
    files = sorted(Path(cfg.cache_dir).glob("*_r*.npz"))
    return [p for p in files if is_heldout(p.stem.rsplit("_r", 1)[0], cfg.heldout_mod) == heldout]


# -- training -----------------------------------------------------------------------------


def fusion_loss(
    x_hat: torch.Tensor, x: torch.Tensor, m: torch.Tensor, alpha: float
) -> dict[str, torch.Tensor]:
    """Eq. 8 without its constant rate term: λ·(MSE + α·L_gc), L_gc = MSE(m⊙x, m⊙x̂).

    L_gc is a mean over all pixels, as written in the paper (Eq. 6), so it weighs text by
    its share of the crop.
    """
    mse = ((x_hat - x) ** 2).mean()
    gc = ((m * (x_hat - x)) ** 2).mean()
    return {"loss": LMBDA * (mse + alpha * gc), "mse": mse, "gc": gc}


def psnr_gains(
    x: torch.Tensor, x_tilde: torch.Tensor, x_hat: torch.Tensor, m: torch.Tensor
) -> dict[str, float]:
    """PSNR of x̂ minus PSNR of x̃ in dB, over the crops and inside the mask m (0 if empty)."""
    gain = _db(((x_hat - x) ** 2).mean().item()) - _db(((x_tilde - x) ** 2).mean().item())
    if not m.any():
        return {"gain": gain, "text_gain": 0.0}
    n = m.sum().item() * x.shape[1]
    fused = ((m * (x_hat - x)) ** 2).sum().item() / n
    base = ((m * (x_tilde - x)) ** 2).sum().item() / n
    return {"gain": gain, "text_gain": _db(fused) - _db(base)}


class CacheSampler:
    """Random crops (x, x̃, g, m) from cached images held as uint8 tensors."""

    def __init__(
        self,
        files: list[Path],
        rng: np.random.Generator,
        p_text: float,
        real_share: float | None = None,
    ) -> None:
        if not files:
            raise ValueError("no training images in the stage-2 cache (run the build first)")
        self.rng = rng
        self.p_text = p_text
        real = np.array([not p.name.startswith("synth") for p in files])
        self.weights = None
        if real_share is not None and real.any() and (~real).any():
            self.weights = np.where(real, real_share / real.sum(), (1 - real_share) / (~real).sum())
        self.images: list[torch.Tensor] = []  # (8, H, W): original, decoded, guidance, mask
        self.text_px: list[np.ndarray] = []  # flat indices of text (mask or guidance) pixels
        for p in files:
            with np.load(p) as z:
                a = np.concatenate(
                    [z["original"], z["decoded"], z["guidance"][..., None], z["mask"][..., None]],
                    axis=2,
                )
            self.images.append(torch.from_numpy(a).permute(2, 0, 1).contiguous())
            self.text_px.append(np.flatnonzero((a[..., 6] > 0) | (a[..., 7] > 0)))

    def batch(self, size: int, crop: int) -> tuple[torch.Tensor, ...]:
        out = []
        for _ in range(size):
            i = int(self.rng.choice(len(self.images), p=self.weights))
            a, txt = self.images[i], self.text_px[i]
            h, w = a.shape[1:]
            c = min(crop, h, w)
            if len(txt) and self.rng.random() < self.p_text:
                cy, cx = divmod(int(txt[self.rng.integers(len(txt))]), w)
                cy += int(self.rng.integers(-c // 4, c // 4 + 1))
                cx += int(self.rng.integers(-c // 4, c // 4 + 1))
                y0 = int(np.clip(cy - c // 2, 0, h - c))
                x0 = int(np.clip(cx - c // 2, 0, w - c))
            else:
                y0, x0 = int(self.rng.integers(h - c + 1)), int(self.rng.integers(w - c + 1))
            out.append(a[None, :, y0 : y0 + c, x0 : x0 + c])
        t = torch.cat(out).float()
        return t[:, 0:3] / 255, t[:, 3:6] / 255, t[:, 6:7] / 255, t[:, 7:8]


class Stage2Trainer:
    def __init__(self, cfg: Stage2Config) -> None:
        self.cfg = cfg
        self.out = run_state.open_run(cfg.out_dir, cfg.threads, cfg.seed)
        self.block = FusionBlock(cfg.channels)
        self.opt = torch.optim.Adam(self.block.parameters(), lr=cfg.lr)
        self.rng = np.random.default_rng(cfg.seed)
        self.sampler = CacheSampler(
            cache_files(cfg, heldout=False), self.rng, cfg.p_text_crop, cfg.real_share
        )
        self.step = 0
        self.ckpt = self.out / "checkpoint.pt"
        if self.ckpt.exists():
            state = run_state.load_checkpoint(self.ckpt)
            self.block.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            self.step = state["step"]
            run_state.restore_rngs(state, self.rng)
        run_state.write_settings(self.out, cfg)

    def save(self) -> None:
        state = {
            "model": self.block.state_dict(),
            "optimizer": self.opt.state_dict(),
            "step": self.step,
            **run_state.rng_states(self.rng),
            "channels": self.cfg.channels,
            "train_images": len(self.sampler.images),
        }
        run_state.save_checkpoint(state, self.ckpt)

    def _lr(self) -> float:
        return self.cfg.lr * (0.1 if self.step >= self.cfg.lr_drop_at * self.cfg.steps else 1.0)

    def train_step(self) -> dict[str, float]:
        self.block.train()
        crop = int(self.rng.integers(self.cfg.crop[0], self.cfg.crop[1] + 1))
        x, xt, g, m = self.sampler.batch(self.cfg.batch_size, crop)
        for grp in self.opt.param_groups:
            grp["lr"] = self._lr()
        x_hat = self.block(xt, g)
        terms = fusion_loss(x_hat, x, m, self.cfg.alpha)
        self.opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.block.parameters(), self.cfg.clip_grad)
        self.opt.step()
        self.step += 1
        return {"loss": terms["loss"].item(), **psnr_gains(x, xt, x_hat.detach(), m)}

    def run(self, steps: int | None = None, minutes: float | None = None) -> None:
        """Train to the configured total, or ``steps`` more, or for ``minutes`` of wall time."""
        end = self.cfg.steps if steps is None else min(self.cfg.steps, self.step + steps)
        deadline = None if minutes is None else time.monotonic() + 60 * minutes
        header = ["step", "time", "loss", "gain_db", "text_gain_db", "lr"]
        with (
            run_state.csv_log(self.out / "log.csv", header) as log_row,
            tqdm(total=end, initial=self.step, desc="stage2", dynamic_ncols=True) as bar,
        ):
            acc: list[dict[str, float]] = []
            while self.step < end:
                acc.append(self.train_step())
                bar.update(1)
                if self.step % 50 == 0 or self.step == end:
                    avg = {k: float(np.mean([a[k] for a in acc])) for k in acc[0]}
                    acc.clear()
                    bar.set_postfix(
                        loss=f"{avg['loss']:.2f}",
                        gain=f"{avg['gain']:+.3f}",
                        text=f"{avg['text_gain']:+.3f}",
                    )
                    log_row(
                        [
                            self.step,
                            f"{time.time():.0f}",
                            *(f"{avg[k]:.5f}" for k in ("loss", "gain", "text_gain")),
                            self._lr(),
                        ]
                    )
                if deadline is not None and time.monotonic() > deadline:
                    end = self.step
                if self.step % self.cfg.checkpoint_every == 0 or self.step == end:
                    self.save()
        run_state.write_status(self.out, {"step": self.step})


# -- held-out measurement -----------------------------------------------------------------


def evaluate(block: FusionBlock, files: list[Path], progress: bool = True) -> dict:
    """PSNR of decoded vs fused whole images, overall and inside the text mask, averaged
    per image in dB; 'no_guidance' runs the block with an all-zero map (post-filter)."""
    from textboost.fusion.runtime import apply_fusion

    rows = []
    for p in tqdm(files, desc="held-out", dynamic_ncols=True, disable=not progress):
        with np.load(p) as z:
            x, dec, g, m = z["original"], z["decoded"], z["guidance"], z["mask"] > 0
            row = {"file": p.name, "bpp": float(z["bpp"]), "source": str(z["source"])}
        fused = apply_fusion(block, dec, g.astype(np.float32) / 255)
        plain = apply_fusion(block, dec, None)
        for key, y in (("decoded", dec), ("fused", fused), ("no_guidance", plain)):
            row[key] = _psnr(x, y)
            row[f"{key}_text"] = _psnr(x[m], y[m]) if m.any() else None
        row["words_sent"] = int(g.any())
        rows.append(row)
    summary: dict = {"images": len(rows)}
    for group in ("all", "synth", "plate"):
        sel = [r for r in rows if group == "all" or r["source"].startswith(group)]
        if not sel:
            continue
        s = {"images": len(sel), "bpp": float(np.mean([r["bpp"] for r in sel]))}
        for key in ("decoded", "fused", "no_guidance"):
            s[key] = float(np.mean([r[key] for r in sel]))
            txt = [r[f"{key}_text"] for r in sel if r[f"{key}_text"] is not None]
            s[f"{key}_text"] = float(np.mean(txt)) if txt else None
            s["text_images"] = len(txt)
        summary[group] = s
    return {"summary": summary, "images": rows}


def run_eval(cfg: Stage2Config, block: FusionBlock) -> dict:
    """:func:`evaluate` on the held-out cache files, with the settings it ran under."""
    torch.set_num_threads(cfg.threads)
    res = evaluate(block.eval(), cache_files(cfg, heldout=True))
    res["heldout_mod"] = cfg.heldout_mod
    res["cache_dir"] = cfg.cache_dir
    return res


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0**2 / max(mse, 1e-10))


def _db(mse: float) -> float:
    return 10 * math.log10(1 / max(mse, 1e-12))
