"""How well the guidance matches the real glyphs: IoU before/after the sender's style search.

    python benchmarks/guidance_match.py [--sets openalpr_us ccpd_samples ...] [--limit N]
        [--colours] [--json out.json]

For each image of a set (the first ``--limit``, sorted by name): the spotter (the
default, PP-OCRv4) reads the original; the words it reads correctly (E2E pairs with the
annotation: IoU > 0.5 and the right string; on plate sets, the plate read exactly) are
the words measured, with their quads quantised as the receiver sees them. For each word:

* IoU of the glyph mask rendered today (version 0: DejaVu Sans Bold filling the
  rectangle less 12 %, the better polarity) with the Otsu mask of the original inside
  the word's rectangle;
* the same IoU with the style the sender's search picks (``textboost.text.match``);
* the search's CPU time (process time, one thread) and the bytes the style adds to the
  text section (per word, after compression, the set's words carried together).

On the plate sets whose plates have one known polarity, how often the style's polarity is
the plate's: OpenALPR US plates are dark on light; CCPD's blue plates (7 characters) light
on dark, its green new-energy plates (8) dark on light. ``--score`` picks the search's
objective (``textboost.text.match.SCORES``): the soft IoU with one Otsu class (the first
objective) or the correlation with the luminance (the sender's default).

A set on which the spotter reads no word correctly (CCPD: PP-OCRv4 misses the province
character) is measured on its annotated quads and strings instead, marked "annotated".

Evaluation sets (ICDAR 2015, OpenALPR EU/BR, Kodak) are not used here: the search grid
was tuned on these sets only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections import Counter
from pathlib import Path

from textboost.codec.image import load_image
from textboost.scenetext.gt import load_sets
from textboost.scenetext.match import match_image
from textboost.text.filter import TextFilter
from textboost.text.match import SCORES, glyph_iou, match_word
from textboost.text.payload import encode_words, quantise_words
from textboost.text.spotter import default_spotter
from textboost.text.style import FACES
from textboost.text.words import Word

SCENETEXT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "scenetext"
SETS = (
    "openalpr_us",
    "ccpd_samples",
    "container_nameplates",
    "underwater_product_labels",
    "vn_device_lcd_readings",
)


def known_dark(name: str, text: str) -> bool | None:
    """Whether a plate of set ``name`` reading ``text`` has dark glyphs (None: unknown)."""
    if name == "openalpr_us":
        return True
    if name == "ccpd_samples":
        return sum(c.isalnum() for c in text) >= 8
    return None


def read_words(gt, spotter) -> tuple[object, list[Word]]:
    """The image and the spotted words that read an annotated word correctly."""
    img = load_image(gt.image)
    dets = spotter.spot(img)
    m = match_image(gt.words, dets, ignore_unannotated=gt.kind == "plate")
    return img, [dets[j] for _, j, ok in m.pairs if ok]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS))
    ap.add_argument("--limit", type=int, default=25, help="images per set (0: all)")
    ap.add_argument("--colours", action="store_true", help="also carry fg/bg colours")
    ap.add_argument("--score", choices=SCORES, default=TextFilter().match_score,
                    help="the search's objective (default: the sender's)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    spotter = default_spotter()
    summary = {}
    print(
        f"{'set':<26} {'images':>6} {'words':>5} {'IoU today':>9} {'IoU styled':>10} "
        f"{'ms/word (med, p90)':>18} {'B/word':>6}  faces chosen"
    )
    for name, images in load_sets(SCENETEXT, args.sets, args.limit):
        before, after, cpu, faces, dark = [], [], [], Counter(), Counter()
        polarity = Counter()  # right / wrong against the plate's known polarity
        plain_b = styled_b = n_words = 0
        pairs = [read_words(gt, spotter) for gt in images]
        source = "spotted"
        if not any(words for _, words in pairs):
            source = "annotated"
            pairs = [
                (img, [Word(g.quad, g.text) for g in gt.words if g.care])
                for (img, _), gt in zip(pairs, images, strict=True)
            ]
        for img, words in pairs:
            if not words:
                continue
            h, w = img.shape[:2]
            words = quantise_words(words, w, h)
            styled = []
            for wd in words:
                t0 = time.process_time()
                m = match_word(img, wd, colours=args.colours, score=args.score)
                cpu.append(time.process_time() - t0)
                if m is None:
                    styled.append(wd)
                    continue
                before.append(glyph_iou(img, wd, None))
                after.append(glyph_iou(img, wd, m.style))
                faces[FACES[m.style.face].file.split(".")[0]] += 1
                dark[m.style.dark] += 1
                if (want := known_dark(name, wd.text)) is not None:
                    polarity["right" if m.style.dark == want else "wrong"] += 1
                styled.append(Word(wd.quad, wd.text, wd.score, m.style))
            n_words += len(words)
            plain_b += len(encode_words([Word(x.quad, x.text, x.score) for x in words], w, h))
            styled_b += len(encode_words(styled, w, h))
        if not before:
            print(f"{name:<26} {len(images):>6} {0:>5}  (no word read correctly)")
            continue
        cpu.sort()
        s = {
            "images": len(images),
            "words": len(before),
            "iou_today": statistics.mean(before),
            "iou_styled": statistics.mean(after),
            "ms_per_word_median": 1000 * statistics.median(cpu),
            "ms_per_word_p90": 1000 * cpu[min(len(cpu) - 1, int(0.9 * len(cpu)))],
            "style_bytes_per_word": (styled_b - plain_b) / max(1, n_words),
            "words_from": source,
            "faces": dict(faces.most_common()),
            "dark_on_light": dark[True],
            "light_on_dark": dark[False],
            "polarity_right": polarity["right"] if polarity else None,
            "polarity_known": sum(polarity.values()) if polarity else None,
            "score": args.score,
        }
        summary[name] = s
        print(
            f"{name:<26} {s['images']:>6} {s['words']:>5} {s['iou_today']:>9.3f} "
            f"{s['iou_styled']:>10.3f} {s['ms_per_word_median']:>9.1f}, "
            f"{s['ms_per_word_p90']:>6.1f} {s['style_bytes_per_word']:>6.2f}  "
            + ", ".join(f"{k} {v}" for k, v in faces.most_common(3))
            + ("" if source == "spotted" else "  (annotated words)")
            + (f"; polarity right {polarity['right']} of {sum(polarity.values())}"
               if polarity else ""),
            flush=True,
        )
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs; search CPU time is process "
        f"time on one thread; load average {' '.join(load)}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
