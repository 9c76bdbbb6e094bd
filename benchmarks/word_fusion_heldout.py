"""The word block on the held-out images of its stage-2 cache: PSNR and the spotter, per set.

    OMP_NUM_THREADS=1 python benchmarks/word_fusion_heldout.py --config configs/stage2_words.yaml \
        [--checkpoint runs/stage2_words/best.pt] [--out runs/stage2_words/heldout_read.json]

For every held-out cached image (never trained on: 1 in ``heldout_mod`` by name) and rate,
each tile as the codec decoded it and as the block fused it (through the runtime's tile
loop, each word with the style the sender's matcher picks on the original): PSNR
inside the ground truth's care quads and inside the block's regions (squared errors
pooled per set), and the spotter (``default_spotter``) on the tile, scored against the
care words inside it (ICDAR E2E; detections touching no annotated word are ignored, since
the real sets annotate only some text). This is the check before a block ships: it must
beat the codec alone on real crops.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from textboost.fusion.regions import Tile, region_weight, word_tiles
from textboost.fusion.runtime import fuse
from textboost.fusion.word_block import WordFusionNet
from textboost.scenetext.gt import GtWord
from textboost.scenetext.match import Counts, match_image
from textboost.text.spotter import default_spotter
from textboost.train.stage2_words import (
    HELDOUT_VARIANT,
    WordStage2Config,
    split_files,
    style_variants,
)
from textboost.train.word_cache import CACHE_HALO, load_cached


def _inside(words, shape) -> np.ndarray:
    import cv2

    m = np.zeros(shape, np.uint8)
    for w in words:
        cv2.fillPoly(m, [np.round(w.quad).astype(np.int32)], 1)
    return m > 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/stage2_words.yaml")
    p.add_argument("--checkpoint", default=None, help="default: <out_dir>/best.pt")
    p.add_argument("--out", default=None, help="JSON to write (default: print only)")
    a = p.parse_args()
    torch.set_num_threads(1)
    cfg = WordStage2Config.from_file(a.config)
    ckpt = Path(a.checkpoint or Path(cfg.out_dir) / "best.pt")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    block = WordFusionNet(state["channels"])
    block.load_state_dict(state["model"])
    block.eval()
    spotter = default_spotter()
    acc: dict[str, dict] = {}
    for path in split_files(cfg)[1]:
        c = load_cached(path)
        kind = "synth" if c.source.startswith("synth") else c.source.split(":")[0]
        care = [w for w, k in zip(c.gt, c.gt_care, strict=True) if k]
        w, h = c.size
        members = {(t.x0, t.y0, t.x1, t.y1): t.words for t in word_tiles(c.sent, w, h, CACHE_HALO)}
        for k, (x0, y0, x1, y1) in enumerate(c.tiles):
            box = (int(x0), int(y0), int(x1), int(y1))
            tile = Tile(*box, members[box])
            shift = np.array([tile.x0, tile.y0])
            # as the product's sender carries them: each word with its matched style
            styled = style_variants(c.originals[k], c.sent, tile, cfg.match_score)[HELDOUT_VARIANT]
            sent = [replace(wd, quad=wd.quad - shift) for wd in styled]
            gt = [GtWord(w.quad - shift, w.text) for w in care
                  if (w.quad - shift).min() >= 0 and (w.quad - shift)[:, 0].max() <= x1 - x0
                  and (w.quad - shift)[:, 1].max() <= y1 - y0]  # fmt: skip
            orig = c.originals[k]
            text = _inside(gt, orig.shape[:2])
            whole = Tile(0, 0, orig.shape[1], orig.shape[0], tuple(range(len(sent))))
            region = region_weight(sent, whole) > 0  # where the block acts
            for r, rate in enumerate(c.rates):
                dec = c.decoded[r][k]
                if dec is None:
                    continue
                fused = fuse(block, dec, sent)
                s = acc.setdefault(f"{kind} @ {rate:g}", {
                    "tiles": 0, "px_text": 0, "px_region": 0, "sse": {}, "e2e": {}})  # fmt: skip
                s["tiles"] += 1
                s["px_text"] += int(text.sum()) * 3
                s["px_region"] += int(region.sum()) * 3
                for name, img in (("codec", dec), ("fused", fused)):
                    d = img.astype(np.float64) - orig.astype(np.float64)
                    se = s["sse"].setdefault(name, [0.0, 0.0])
                    se[0] += float((d[text] ** 2).sum())
                    se[1] += float((d[region] ** 2).sum())
                    if gt:
                        m = match_image(gt, spotter.spot(img), ignore_unannotated=True)
                        s["e2e"][name] = s["e2e"].get(name, Counts()) + m.e2e
                if gt:
                    m = match_image(gt, spotter.spot(orig), ignore_unannotated=True)
                    s["e2e"]["original"] = s["e2e"].get("original", Counts()) + m.e2e
    db = lambda sse, n: 10 * math.log10(255.0**2 * n / max(sse, 1e-9)) if n else None  # noqa: E731
    out = {"checkpoint": str(ckpt), "step": state["step"], "sets": {}}
    for key, s in sorted(acc.items()):
        row = {"tiles": s["tiles"]}
        for name, (t_sse, r_sse) in s["sse"].items():
            row[f"{name}_text_psnr"] = db(t_sse, s["px_text"])
            row[f"{name}_region_psnr"] = db(r_sse, s["px_region"])
        for name, cnt in s["e2e"].items():
            row[f"{name}_e2e"] = {**cnt.as_dict()}
        out["sets"][key] = row
        gain_t = (row["fused_text_psnr"] or 0) - (row["codec_text_psnr"] or 0)
        gain_r = (row["fused_region_psnr"] or 0) - (row["codec_region_psnr"] or 0)
        e2e = {n: f"{row[f'{n}_e2e']['tp']}/{row[f'{n}_e2e']['n_gt']}"
               for n in ("original", "codec", "fused") if f"{n}_e2e" in row}  # fmt: skip
        print(f"{key:32s} tiles {s['tiles']:3d}  text {gain_t:+.3f} dB  region {gain_r:+.3f} dB"
              f"  words read {e2e}")  # fmt: skip
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
