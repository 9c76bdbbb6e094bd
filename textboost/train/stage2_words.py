"""Stage 2 for the word fusion block: train on crops around carried words, for hours, resumably.

The codec is frozen, so :mod:`textboost.train.word_cache` codes every training image once
per product rate and keeps only the tiles the receiver fuses. Training then draws crops
from those tiles: the block's inputs are built exactly as at the receiver
(:func:`textboost.fusion.word_inputs.tile_inputs` from the carried words), and the loss is
Eq. 8 without its constant rate term, λ·(MSE(x, x̂) + α·MSE(m⊙x, m⊙x̂)) with λ = 255², on
the crop (x̂ = x̃ outside the regions, so only the regions move it); m is the text: the
ground-truth quads and the carried words' rectangles.

Everything a run needs to continue lives in ``out_dir``: ``checkpoint.pt`` (block, Adam,
step, learning rate, NumPy and torch RNG states, best held-out score), ``best.pt`` (the
block at its best held-out score), ``log.csv`` (training loss every 50 steps),
``eval.csv`` (held-out PSNR gains every ``eval_every`` steps). The same command continues
where the last one stopped; ``--minutes`` is the wall-time stop.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from textboost.fusion.regions import pad_tile
from textboost.fusion.word_block import WordFusionNet
from textboost.fusion.word_inputs import INPUT_CHANNELS, tile_inputs
from textboost.settings.load import load
from textboost.train import run_state
from textboost.train.word_cache import (
    CACHE_HALO,
    CacheItem,
    build_word_cache,
    cache_items,
    check_training_dir,
    is_heldout,
    load_cached,
)

__all__ = ["WordStage2Config", "WordTrainer", "build_cache", "evaluate_heldout"]

LMBDA = 255.0**2


@dataclass
class WordStage2Config:
    out_dir: str
    cache_dir: str
    block: str = "words"
    photo_dirs: list[str] = field(default_factory=list)
    font_dirs: list[str] = field(default_factory=list)  # "matplotlib": its bundled faces
    font_exclude: list[str] = field(default_factory=list)
    min_fonts: int = 0  # fewer usable faces than this: a one-line warning (font_warning)
    real_dirs: list[str] = field(default_factory=list)
    max_per_set: int | None = None
    synth_images: int = 0
    synth_seed: int = 0
    rates: tuple[float, ...] = (0.02, 0.03, 0.06)
    max_side: int = 1280
    codec: str | None = None
    cache_minutes: float = 0.0  # a run alternates: extend the cache this long, ...
    train_minutes: float = 30.0  # ... then train this long, until its --minutes are spent
    heldout_mod: int = 8
    channels: tuple[int, int] = (16, 24)
    steps: int = 200_000
    batch_size: int = 8
    crop: int = 96
    lr: float = 3e-4
    lr_min: float = 3e-5
    patience: int = 4  # held-out evaluations without a new best before the lr halves
    alpha: float = 4.0
    # crops by what the stream carries: no style (version 0), the sender's style (the
    # product's default: face, geometry, polarity), the style with its two colours
    style_mix: tuple[float, float, float] = (0.25, 0.5, 0.25)
    # the style search's objective on the original tiles (textboost.text.match.SCORES);
    # the sender should match with the same (TextFilter.match_score); iou: the first run's
    match_score: str = "iou"
    augment: bool = True  # mirror, colour permutation, inversion (CropSampler._augment)
    clip_grad: float = 1.0
    threads: int = 1
    checkpoint_every: int = 200
    eval_every: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.block != "words":
            raise ValueError(f"block {self.block!r}: this trainer is for 'words'")
        self.rates = tuple(float(r) for r in self.rates)
        self.channels = tuple(int(c) for c in self.channels)
        self.style_mix = tuple(float(v) for v in self.style_mix)
        if len(self.style_mix) != 3 or min(self.style_mix) < 0 or sum(self.style_mix) <= 0:
            raise ValueError(f"style_mix {self.style_mix}: expected three shares >= 0")
        for d in [*self.photo_dirs, *self.real_dirs]:
            check_training_dir(d) if Path(d).exists() else None
        if not self.rates or any(not 0 < r < 1 for r in self.rates):
            raise ValueError(f"rates {self.rates}: expected bpp values in (0, 1)")
        if self.crop < 32 or self.crop % 4:
            raise ValueError(f"crop {self.crop}: expected a multiple of 4, at least 32")

    @classmethod
    def from_file(cls, path: str | Path) -> WordStage2Config:
        """Raises: ConfigError (a ValueError), one line naming the file and the setting."""
        return load(path, cls, "stage-2 settings")

    def font_dirs_resolved(self) -> list[str]:
        dirs = []
        for d in self.font_dirs:
            if d == "matplotlib":
                import matplotlib

                d = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
            dirs.append(d)
        return dirs

    def fonts(self) -> list[Path]:
        from textboost.train.font_pool import discover_fonts

        return discover_fonts(self.font_dirs_resolved(), self.font_exclude)

    def font_warning(self) -> str | None:
        """The line that says the machine lacks the training faces (None: enough, or no
        synthetic images to draw)."""
        from textboost.train.font_pool import shortfall

        if not self.synth_images or not self.min_fonts:
            return None
        return shortfall(len(self.fonts()), self.font_dirs, self.min_fonts)

    def items(self) -> list[CacheItem]:
        return cache_items(self.real_dirs, self.synth_images, self.synth_seed, self.max_per_set)


def build_cache(cfg: WordStage2Config, minutes: float | None) -> dict:
    torch.set_num_threads(cfg.threads)
    fonts = cfg.fonts() if cfg.synth_images else []
    return build_word_cache(
        cfg.cache_dir, cfg.items(), cfg.rates, cfg.max_side, cfg.photo_dirs, fonts,
        cfg.synth_seed, cfg.codec, minutes,
    )  # fmt: skip


# -- samples --------------------------------------------------------------------------


VARIANTS = ("plain", "styled", "colours")  # what the stream carries, as in style_mix
HELDOUT_VARIANT = 1  # held-out checks use what the product sends by default


@dataclass
class TileSample:
    """One tile at one rate, ready to crop: uint8 x, x̃, the block's inputs for each of
    ``VARIANTS`` (float16, shared by a tile's rates), text mask."""

    name: str
    real: bool
    rate: float
    x: np.ndarray  # (3, h, w) uint8 original
    xt: np.ndarray  # (3, h, w) uint8 decoded
    variants: tuple[np.ndarray, ...]  # (INPUT_CHANNELS, h, w) float16 each
    text: np.ndarray  # (h, w) uint8: ground-truth quads ∪ carried rectangles
    region_px: np.ndarray  # flat indices where the region weight is > 0

    @property
    def inputs(self) -> np.ndarray:
        return self.variants[HELDOUT_VARIANT]


def style_variants(
    original: np.ndarray, words: list, tile, score: str = "iou"
) -> tuple[list, list, list]:
    """The carried words three ways: without style, with the style the sender's matcher
    picks on the original tile (no colours; ``score``: its objective), and with its
    colours too."""
    from dataclasses import replace

    from textboost.text.match import match_words
    from textboost.text.words import Word

    shift = np.array([tile.x0, tile.y0], np.float64)
    local = [Word(words[i].quad - shift, words[i].text, words[i].score) for i in tile.words]
    matched = dict(
        zip(tile.words, match_words(original, local, colours=True, score=score), strict=True)
    )
    plain = [replace(w, style=None) for w in words]
    coloured = [
        replace(w, style=matched[i].style if i in matched else None) for i, w in enumerate(words)
    ]
    styled = [
        replace(w, style=None if w.style is None else replace(w.style, fg=None, bg=None))
        for w in coloured
    ]
    return plain, styled, coloured


def _text_mask(words, tile, shape) -> np.ndarray:
    import cv2

    m = np.zeros(shape, np.uint8)
    for w in words:
        cv2.fillPoly(m, [np.round(w.quad - [tile.x0, tile.y0]).astype(np.int32)], 1)
    return m


def load_samples(files: list[Path], score: str = "iou") -> list[TileSample]:
    from textboost.fusion.regions import Tile, word_tiles
    from textboost.text.words import Word, oriented_rect, rect_quad

    out = []
    for p in files:
        c = load_cached(p)
        if not len(c.tiles):
            continue
        rects = [Word(rect_quad(*oriented_rect(w.quad)), w.text) for w in c.sent]
        care = [w for w, k in zip(c.gt, c.gt_care, strict=True) if k]
        real = not c.source.startswith("synth")
        w, h = c.size
        members = {(t.x0, t.y0, t.x1, t.y1): t.words for t in word_tiles(c.sent, w, h, CACHE_HALO)}
        for k, (x0, y0, x1, y1) in enumerate(c.tiles):
            box = (int(x0), int(y0), int(x1), int(y1))
            tile = Tile(*box, members.get(box, tuple(range(len(c.sent)))))
            orig = c.originals[k]
            variants = tuple(
                tile_inputs(v, tile).astype(np.float16)
                for v in style_variants(orig, c.sent, tile, score)
            )
            text = _text_mask(care + rects, tile, orig.shape[:2])
            region = np.flatnonzero(variants[0][-1] > 0)
            if not len(region):
                continue
            for r, decs in enumerate(c.decoded):
                if decs[k] is None:
                    continue
                out.append(
                    TileSample(
                        c.name, real, float(c.rates[r]),
                        np.ascontiguousarray(orig.transpose(2, 0, 1)),
                        np.ascontiguousarray(decs[k].transpose(2, 0, 1)),
                        variants, text, region,
                    )
                )  # fmt: skip
    return out


def split_files(cfg: WordStage2Config) -> tuple[list[Path], list[Path]]:
    files = sorted(p for p in Path(cfg.cache_dir).glob("*.npz") if not p.name.endswith(".tmp.npz"))
    held = [p for p in files if is_heldout(p.stem, cfg.heldout_mod)]
    return [p for p in files if p not in held], held


class CropSampler:
    """Batches of crops centred near region pixels (x, x̃, inputs, text mask), as tensors."""

    def __init__(
        self,
        samples: list[TileSample],
        rng: np.random.Generator,
        style_mix: Sequence[float],
        augment: bool = False,
    ) -> None:
        if not samples:
            raise ValueError("no training tiles in the stage-2 cache (build it first)")
        self.samples = samples
        self.rng = rng
        self.mix = np.asarray(style_mix, np.float64) / sum(style_mix)
        self.augment = augment

    def batch(self, size: int, crop: int) -> tuple[torch.Tensor, ...]:
        xs, xts, ins, ms = [], [], [], []
        for _ in range(size):
            s = self.samples[int(self.rng.integers(len(self.samples)))]
            h, w = s.x.shape[1:]
            cy, cx = divmod(int(s.region_px[self.rng.integers(len(s.region_px))]), w)
            ch, cw = min(crop, h), min(crop, w)
            y0 = int(np.clip(cy - ch // 2 + self.rng.integers(-ch // 4, ch // 4 + 1), 0, h - ch))
            x0 = int(np.clip(cx - cw // 2 + self.rng.integers(-cw // 4, cw // 4 + 1), 0, w - cw))
            inp = s.variants[int(self.rng.choice(len(self.mix), p=self.mix))]
            sl = (slice(None), slice(y0, y0 + ch), slice(x0, x0 + cw))
            pad = ((0, 0), (0, crop - ch), (0, crop - cw))  # small tiles: zero-padded, weight 0
            x, xt = np.pad(s.x[sl], pad), np.pad(s.xt[sl], pad)
            inp = np.pad(inp[sl], pad).astype(np.float32)
            m = np.pad(s.text[None, y0 : y0 + ch, x0 : x0 + cw], pad)
            if self.augment:
                x, xt, inp, m = self._augment(x, xt, inp, m)
            xs.append(x)
            xts.append(xt)
            ins.append(inp)
            ms.append(m)
        f = lambda a, d: torch.from_numpy(np.stack(a)).float() / d  # noqa: E731
        return f(xs, 255), f(xts, 255), f(ins, 1), f(ms, 1)

    def _augment(self, x, xt, inp, m):
        """Mirror left–right, permute the colour channels, invert the grey levels: each
        applied to the picture, its decoded copy and the carried style alike (an inverted
        word has the other polarity and the inverted colours), so the block sees many
        more looks of the few words it has."""
        if self.rng.random() < 0.5:
            x, xt, inp, m = x[..., ::-1], xt[..., ::-1], inp[..., ::-1], m[..., ::-1]
        perm = self.rng.permutation(3)
        x, xt = x[perm], xt[perm]
        inp = np.concatenate([inp[:1], inp[1:4][perm], inp[4:]])
        if self.rng.random() < 0.3:
            x, xt = 255 - x, 255 - xt
            flag = inp[4:5]
            inp = np.concatenate([inp[:1], flag * (1 - inp[1:4]), flag, -inp[5:6], inp[6:]])
        return (np.ascontiguousarray(x), np.ascontiguousarray(xt), np.ascontiguousarray(inp),
                np.ascontiguousarray(m))  # fmt: skip


# -- training -------------------------------------------------------------------------


def word_loss(x_hat, x, m, alpha: float) -> dict[str, torch.Tensor]:
    mse = ((x_hat - x) ** 2).mean()
    gc = ((m * (x_hat - x)) ** 2).mean()
    return {"loss": LMBDA * (mse + alpha * gc), "mse": mse, "gc": gc}


class WordTrainer:
    def __init__(self, cfg: WordStage2Config, samples: list[TileSample] | None = None) -> None:
        self.cfg = cfg
        self.out = run_state.open_run(cfg.out_dir, cfg.threads, cfg.seed)
        self.block = WordFusionNet(cfg.channels)
        self.opt = torch.optim.Adam(self.block.parameters(), lr=cfg.lr)
        self.rng = np.random.default_rng(cfg.seed)
        if samples is None:
            samples = load_samples(split_files(cfg)[0], cfg.match_score)
        self.sampler = CropSampler(samples, self.rng, cfg.style_mix, cfg.augment)
        self.step = 0
        self.lr = cfg.lr
        self.best = -math.inf
        self.since_best = 0
        self.ckpt = self.out / "checkpoint.pt"
        if self.ckpt.exists():
            self._load(run_state.load_checkpoint(self.ckpt))
        run_state.write_settings(self.out, cfg)

    def rescore_best(self, heldout: list[TileSample]) -> None:
        """The held-out set grew: score the best block so far on the new set, so that later
        blocks are compared with it on the same tiles."""
        best = self.out / "best.pt"
        if not heldout or not best.exists():
            return
        net = WordFusionNet(self.cfg.channels)
        net.load_state_dict(run_state.load_checkpoint(best)["model"])
        self.best = evaluate_heldout(net, heldout)["text_gain_db"]

    def _load(self, state: dict) -> None:
        self.block.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.step = state["step"]
        self.lr = state["lr"]
        self.best = state["best"]
        self.since_best = state["since_best"]
        run_state.restore_rngs(state, self.rng)

    def state(self) -> dict:
        return {
            "model": self.block.state_dict(),
            "optimizer": self.opt.state_dict(),
            "step": self.step,
            "lr": self.lr,
            "best": self.best,
            "since_best": self.since_best,
            **run_state.rng_states(self.rng),
            "channels": list(self.cfg.channels),
            "train_tiles": len(self.sampler.samples),
        }

    def save(self, path: Path | None = None) -> None:
        run_state.save_checkpoint(self.state(), path or self.ckpt)

    def train_step(self) -> dict[str, float]:
        self.block.train()
        x, xt, inp, m = self.sampler.batch(self.cfg.batch_size, self.cfg.crop)
        for grp in self.opt.param_groups:
            grp["lr"] = self.lr
        x_hat = self.block(xt, inp)
        terms = word_loss(x_hat, x, m, self.cfg.alpha)
        self.opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.block.parameters(), self.cfg.clip_grad)
        self.opt.step()
        self.step += 1
        with torch.no_grad():
            base = word_loss(xt, x, m, self.cfg.alpha)["loss"].item()
        return {"loss": terms["loss"].item(), "base": base}

    def run(
        self,
        steps: int | None = None,
        minutes: float | None = None,
        heldout: list[TileSample] | None = None,
        log=print,
    ) -> None:
        """Train ``steps`` more (else to ``cfg.steps``) or until ``minutes`` pass; evaluate
        ``heldout`` every ``eval_every`` steps, keep the best block, halve the lr after
        ``patience`` evaluations without a new best."""
        end = self.cfg.steps if steps is None else self.step + steps
        deadline = None if minutes is None else time.monotonic() + 60 * minutes
        log_header = ["step", "time", "loss", "codec_loss", "lr"]
        eval_header = ["step", "time", "tiles", "region_gain_db", "text_gain_db", "best"]
        with (
            run_state.csv_log(self.out / "log.csv", log_header) as log_row,
            run_state.csv_log(self.out / "eval.csv", eval_header) as eval_row,
        ):
            acc: list[dict[str, float]] = []
            t_last = time.monotonic()
            while self.step < end:
                acc.append(self.train_step())
                if self.step % 50 == 0:
                    loss = float(np.mean([a["loss"] for a in acc]))
                    base = float(np.mean([a["base"] for a in acc]))
                    acc.clear()
                    log_row([self.step, f"{time.time():.0f}", f"{loss:.4f}", f"{base:.4f}",
                             f"{self.lr:.3g}"])  # fmt: skip
                    rate = 50 / max(1e-9, time.monotonic() - t_last)
                    t_last = time.monotonic()
                    log(f"step {self.step} loss {loss:.3f} (codec {base:.3f}) "
                        f"lr {self.lr:.3g} {rate:.2f} step/s")  # fmt: skip
                if heldout and self.step % self.cfg.eval_every == 0:
                    res = evaluate_heldout(self.block, heldout)
                    score = res["text_gain_db"]
                    improved = score > self.best
                    if improved:
                        self.best, self.since_best = score, 0
                        self.save(self.out / "best.pt")
                    else:
                        self.since_best += 1
                        if self.since_best >= self.cfg.patience and self.lr > self.cfg.lr_min:
                            self.lr = max(self.cfg.lr_min, self.lr / 2)
                            self.since_best = 0
                    gains = f"{res['region_gain_db']:.4f}", f"{score:.4f}"
                    eval_row([self.step, f"{time.time():.0f}", res["tiles"], *gains,
                              int(improved)])  # fmt: skip
                    log(f"held-out at step {self.step}: {json.dumps(res)}")
                done = deadline is not None and time.monotonic() > deadline
                if self.step % self.cfg.checkpoint_every == 0 or done or self.step == end:
                    self.save()
                if done:
                    break
        status = {"step": self.step, "lr": self.lr, "best_text_gain_db": self.best}
        run_state.write_status(self.out, status)


def evaluate_heldout(block: WordFusionNet, samples: list[TileSample]) -> dict:
    """PSNR gain of the fused tiles over the codec's, in the regions (weight > 0) and in
    the text mask, from squared errors summed over every held-out tile (style given)."""
    block.eval()
    se = {"reg_c": 0.0, "reg_f": 0.0, "txt_c": 0.0, "txt_f": 0.0}
    n_reg = n_txt = 0
    with torch.inference_mode():
        for s in samples:
            x = torch.from_numpy(pad_tile(s.x)).float()[None] / 255
            xt = torch.from_numpy(pad_tile(s.xt)).float()[None] / 255
            inp = torch.from_numpy(pad_tile(s.inputs.astype(np.float32)))[None]
            y = block(xt, inp).clamp(0, 1)
            y = torch.round(y * 255) / 255  # the receiver's 8-bit output
            reg = (inp[:, -1:] > 0).float()
            txt = torch.from_numpy(pad_tile(s.text)).float()[None, None]
            for key, mask in (("reg", reg), ("txt", txt)):
                se[f"{key}_c"] += float((mask * (xt - x) ** 2).sum())
                se[f"{key}_f"] += float((mask * (y - x) ** 2).sum())
            n_reg += int(reg.sum()) * 3
            n_txt += int(txt.sum()) * 3
    block.train()
    db = lambda a, b: 10 * math.log10(max(a, 1e-12) / max(b, 1e-12))  # noqa: E731
    return {
        "tiles": len(samples),
        "region_gain_db": db(se["reg_c"], se["reg_f"]) if n_reg else 0.0,
        "text_gain_db": db(se["txt_c"], se["txt_f"]) if n_txt else 0.0,
        "codec_region_psnr": 10 * math.log10(n_reg / max(se["reg_c"], 1e-12)) if n_reg else None,
    }


__all__ += ["INPUT_CHANNELS", "load_samples", "split_files"]
