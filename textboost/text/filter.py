"""Which spotted words are worth their bytes (paper §4.1): small text only.

Large text survives compression on its own; small text does not. A word is kept when
its average character area (box area / characters) is below a threshold T that grows
with the image: the paper uses T = 150 px² on 256² training crops and 800 px² on full
scene images. Between and beyond those two points T follows the power law through them,
T(p) = T_full · (p / 1280·720)^k with k = ln(800/150) / ln(1280·720 / 256²) ≈ 0.63, taking
ICDAR 2015's 1280×720 as the paper's "full image" (our choice: the paper gives no law).

Our default T_full is 1600 px², twice the paper's 800 (``TextFilter(char_area_full=800)``
is the paper's setting). The paper's codec keeps "large" text legible at its rates; ours,
smaller and coding most frames at half size below 0.03 bpp, does not: on OpenALPR's
European set a plate (≈ 800 px² a character at 1000×750) was read on 0 of 5 images by the
codec alone at 0.03 bpp (``results/text_eval.json``), and the paper's T dropped it. A plate
costs about 10 bytes of text section.

The words kept go in order of value (:func:`word_rank`), which is also their order in the
text section, so a link that delivers only its first bytes delivers the most useful words:
plate-like strings first (letters and digits mixed, 4-10 of them once spaces and dashes are
dropped: plates, call signs, unit and tail numbers), then short signs (at most 8
characters: exits, numbers, names), then the rest; within each tier the smallest text
first (the filter's own criterion: what the codec loses first), then the more confident.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

from textboost.text.words import Word

__all__ = ["TextFilter", "select_words", "word_rank"]

CROP_PIXELS, CROP_T = 256 * 256, 150.0
FULL_PIXELS, FULL_T = 1280 * 720, 800.0  # the paper's two points fix the exponent
T_EXPONENT = math.log(FULL_T / CROP_T) / math.log(FULL_PIXELS / CROP_PIXELS)
DEFAULT_T = 2 * FULL_T
SHORT_SIGN = 8  # characters: a short sign ranks above longer text
_PLATE = re.compile(r"(?=[^\W_]*\d)(?=[^\W_]*[^\W\d_])[^\W_]{4,10}")


@dataclass(frozen=True, slots=True)
class TextFilter:
    """Thresholds of the sender's word selection; recorded with every result they produce."""

    char_area_full: float = DEFAULT_T  # T in px² at FULL_PIXELS; scaled with the image's pixels
    min_score: float = 0.5  # spotter confidence below this is dropped
    max_words: int = 32  # keep the most valuable first (word_rank) when there are more
    max_chars: int = 48  # longer strings are dropped (a spotter run-on, not a word)
    # the sender fits each carried word's rendering to the original (textboost.text.match):
    # face, polarity, ink box, ~3 bytes a word; colours add 3 more
    style: bool = True
    colours: bool = False
    # the style search's objective (textboost.text.match.SCORES): ncc, the coverage's
    # correlation with the luminance, carries the plates' polarity right where iou (the
    # first objective) was drawn to the larger Otsu class (docs/text.md, "Style search")
    match_score: str = "ncc"

    def __post_init__(self) -> None:
        if not self.char_area_full > 0:
            raise ValueError(f"char_area_full {self.char_area_full}: expected > 0 px²")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score {self.min_score}: expected 0..1")
        if not 0 <= self.max_words <= 255:
            raise ValueError(f"max_words {self.max_words}: expected 0..255")
        if not 1 <= self.max_chars <= 255:
            raise ValueError(f"max_chars {self.max_chars}: expected 1..255")
        from textboost.text.match import SCORES

        if self.match_score not in SCORES:
            raise ValueError(f"match_score {self.match_score!r}: expected one of {SCORES}")

    def threshold(self, width: int, height: int) -> float:
        """T in px² for an image of this size."""
        return self.char_area_full * (width * height / FULL_PIXELS) ** T_EXPONENT

    def to_dict(self) -> dict:
        return asdict(self)


def word_rank(w: Word) -> tuple[int, float, float]:
    """Sort key of a word's value to an operator (smallest first): tier, then average
    character area, then confidence; see the module docstring."""
    compact = re.sub(r"[\s\-.]", "", w.text)
    if _PLATE.fullmatch(compact):
        tier = 0
    elif len(w.text.strip()) <= SHORT_SIGN:
        tier = 1
    else:
        tier = 2
    return (tier, w.char_area, -w.score)


def select_words(words: list[Word], width: int, height: int, flt: TextFilter) -> list[Word]:
    """The words the sender carries: confident, small, at most ``max_words``, most valuable
    first (:func:`word_rank`)."""
    t = flt.threshold(width, height)
    kept = [
        w
        for w in words
        if w.score >= flt.min_score and 0 < len(w.text.strip()) <= flt.max_chars and w.char_area < t
    ]
    kept.sort(key=word_rank)
    return kept[: flt.max_words]
