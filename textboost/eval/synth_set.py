"""A synthetic scene-text evaluation set: the project's generator on given photos, with ICDAR gt.

    python -m textboost.eval synth --photos link_sim/data/kodak --out link_sim/data/kodak_text

One image per photo (in name order), drawn by
:class:`textboost.train.synth_text.SceneTextGenerator` from ``(seed, index)``, written as
PNG with a ``gt_<stem>.txt`` in the ICDAR 2015 line format
(``x1,y1,...,x4,y4,transcription``) and a MANIFEST.tsv. These are evaluation and preset
images, so the training rule "never Kodak" does not apply here: the generator is pointed
at the photos directly.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image

from textboost.train.synth_text import SceneTextGenerator, SynthConfig, font_paths

__all__ = ["write_synth_set"]


class _PhotoGenerator(SceneTextGenerator):
    """The generator on one given photo list (no training-set checks: evaluation only)."""

    def __init__(self, photos: list[Path], cfg: SynthConfig) -> None:
        self.cfg, self.photos, self.fonts, self.extra_fonts = cfg, photos, font_paths(), []


def write_synth_set(photos: list[Path], out: Path, seed: int, cfg: SynthConfig) -> list[Path]:
    """Write one text image and its gt per photo into ``out``; returns the image paths."""
    out.mkdir(parents=True, exist_ok=True)
    written, manifest = [], ["file\tbytes\tWxH\tsha256"]
    for i, photo in enumerate(sorted(photos)):
        sample = _PhotoGenerator([photo], cfg).generate(seed, i)
        png = out / f"{photo.stem}_text.png"
        Image.fromarray(sample.image).save(png, optimize=True)
        lines = [
            ",".join(str(round(v)) for v in w.quad.ravel()) + "," + w.text for w in sample.words
        ]
        (out / f"gt_{png.stem}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        data = png.read_bytes()
        h, w = sample.image.shape[:2]
        manifest.append(f"{png.name}\t{len(data)}\t{w}x{h}\t{hashlib.sha256(data).hexdigest()}")
        written.append(png)
    (out / "MANIFEST.tsv").write_text("\n".join(manifest) + "\n")
    return written
