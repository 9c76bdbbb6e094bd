"""`Pipeline`: the method (paper §4) composed from the codec, the text side channel and
the fusion block, for the nodes and the CLIs.

    pipe = Pipeline.load()                        # the shipped model and its fusion block
    data = pipe.encode_to_budget(img, max_bytes=1500)   # words spotted and carried
    img2 = pipe.decode(data)                      # words rendered and fused

Sender: spot → filter → fit the budget with the text section counted → container. The
words are spotted on the full-size image in a second thread while g_a runs (the stream
is the same either way). Receiver: container (parsed once) → decode → the words (read
once) → render → fuse. ``text=False`` sends no words; ``fusion=False`` decodes to the
codec's own output bit for bit. The codec's own calls are on :attr:`Pipeline.codec`.
"""

from __future__ import annotations

import functools
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from textboost.bitstream.capture import CaptureMeta
from textboost.bitstream.container import FULL_SCALE, Container
from textboost.codec.analysis import Analysis
from textboost.codec.api import Analyser, Codec
from textboost.codec.budget import Progress
from textboost.codec.weights import ModelFile, fusion_path
from textboost.pipeline.parsed import Parsed
from textboost.text.filter import TextFilter, select_words
from textboost.text.payload import (
    decode_words,
    encode_words,
    quantise_words,
    read_words,
    with_restore,
)
from textboost.text.words import Word

if TYPE_CHECKING:
    from textboost.text.render import Guidance
    from textboost.text.spotter import Spotter

__all__ = ["Pipeline", "Received"]


@dataclass(frozen=True)
class Received:
    """What the receiver makes of one stream (:meth:`Pipeline.receive`)."""

    image: np.ndarray  # HxWx3 uint8: fused when ``fused``, else the codec's own output
    words: list[Word]  # the carried words, in image pixels ([] when the section is unreadable)
    fused: bool
    guidance: Guidance | None = None  # the rendered words, when fusing rendered them


@functools.cache
def _spot_worker() -> ThreadPoolExecutor:
    """One thread that spots words while the caller's thread runs g_a."""
    return ThreadPoolExecutor(1, thread_name_prefix="spotter")


class Pipeline:
    """The codec with the text side channel at the sender and the fusion block at the
    receiver.

    Args:
        codec: the codec (transforms, entropy models, coding, budget search).
        fusion: the fusion block (torch, :mod:`textboost.fusion.runtime`, or exported,
            :class:`textboost.fusion.exported.OnnxFusion`), or None: the codec's output.
        spotter: the sender's text spotter (None: RapidOCR, built on first use).
        text_filter: which spotted words the sender keeps (default thresholds).
    """

    def __init__(
        self,
        codec: Codec,
        fusion: Any = None,
        spotter: Spotter | None = None,
        text_filter: TextFilter | None = None,
    ) -> None:
        self.codec = codec
        self.fusion = fusion
        self._spotter = spotter
        self.text_filter = text_filter or TextFilter()
        # spot words in a second thread while g_a runs (False: one after the other; the
        # stream is the same either way)
        self.overlap_spotting = True

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        backend: str = "torch",
        device: str = "cpu",
        fusion: bool | None = None,
        spotter: Spotter | None = None,
        text_filter: TextFilter | None = None,
        onnx_dir: str | Path | None = None,
    ) -> Pipeline:
        """Load a model file (None: the shipped default) and its fusion block; never
        touches the network.

        ``fusion``: None loads the fusion block shipped beside the model if there is one,
        True requires it (FileNotFoundError naming the file), False leaves it out.
        ``backend``: torch, onnxruntime or tensorrt; the last two run the graphs of
        ``python -m export onnx`` from ``onnx_dir`` (default: the cache folder of the
        model id), the fusion block's too, and never import torch.
        """
        model = ModelFile.load(path)
        if backend != "torch":
            from textboost.codec.backends import exported_fusion
            from textboost.fusion.exported import OnnxFusion

            codec = Codec.load(model, backend=backend, device=device, onnx_dir=onnx_dir)
            graph = exported_fusion(model, codec.transforms, fusion)
            block = None if graph is None else OnnxFusion(*graph)
            return cls(codec, block, spotter, text_filter)
        block = None
        if fusion is not False:
            from textboost.fusion.runtime import load_fusion

            fpath = fusion_path(model.path)
            if fpath.is_file():
                block = load_fusion(fpath, model_id=model.model_id)
            elif fusion:
                raise FileNotFoundError(f"{fpath}: no fusion block beside {model.path.name}")
        return cls(Codec.load(model, backend=backend, device=device), block, spotter, text_filter)

    @property
    def model(self) -> ModelFile:
        return self.codec.model

    @property
    def model_id(self) -> bytes:
        return self.codec.model_id

    # -- sender ------------------------------------------------------------------------

    @property
    def spotter(self) -> Spotter:
        """The sender's text spotter (RapidOCR unless one was given), built on first use."""
        if self._spotter is None:
            from textboost.text.spotter import default_spotter

            self._spotter = default_spotter()
        return self._spotter

    def spot(self, img: np.ndarray) -> list[Word]:
        """The words this sender would carry for an RGB image: spotted, filtered, and
        (``text_filter.style``) each with the rendering that best fits its glyphs in
        ``img``, fitted to the quad as the receiver will read it."""
        h, w = img.shape[:2]
        words = select_words(self.spotter.spot(img), w, h, self.text_filter)
        if self.text_filter.style and words:
            from textboost.text.match import match_words

            words = match_words(
                img, quantise_words(words, w, h), colours=self.text_filter.colours,
                score=self.text_filter.match_score,
            )  # fmt: skip
        return words

    def analyse(
        self,
        img,
        scale: int = FULL_SCALE,
        text: bool = True,
        meta: CaptureMeta | None = None,
    ) -> Analysis:
        """g_a and h_a at ``scale`` (:meth:`Codec.analyse`) and, with ``text``, the words
        spotted on the full-size image whatever the scale, carried as the text section."""
        a, coded = self.codec.prepare(img, scale)
        h, w = a.shape[:2]
        if text and self.overlap_spotting:
            # the spotter and g_a read the same image and nothing else: run them at once
            # (both spend their time in native code that releases the GIL)
            spotting = _spot_worker().submit(self.spot, a)
            try:
                y, z = self.codec.latents(coded)
            finally:
                words = spotting.result()
        else:
            words = self.spot(a) if text else []
            y, z = self.codec.latents(coded)
        return Analysis(w, h, y, z, a, scale, encode_words(words, w, h), meta, coded)

    def encode(
        self,
        img,
        rate: float = 0.5,
        text: bool = True,
        meta: CaptureMeta | None = None,
        effort: int = 0,
    ) -> bytes:
        """:meth:`Codec.encode` with the words carried (``text``)."""
        return self.codec.encode(img, rate, meta, effort, analyse=self._analyser(text))

    def encode_to_budget(
        self,
        img,
        max_bytes: int | None = None,
        bpp: float | None = None,
        text: bool = True,
        search: bool = True,
        meta: CaptureMeta | None = None,
        progress: Progress | None = None,
        effort: int = 0,
        method: str = "predict",
    ) -> bytes:
        """:meth:`Codec.encode_to_budget` with the words carried (``text``): the best
        stream whose real bytes, text and metadata included, fit the budget. The first
        progress step is ``"spot"`` when the words are spotted (they go first, on the
        full-size image)."""
        return self.codec.encode_to_budget(
            img, max_bytes, bpp, search, meta, progress, effort, method,
            analyse=self._analyser(text), first_step="spot" if text else "analyse",
        )  # fmt: skip

    def choose_restored(self, data: bytes, img, block: Any = None) -> bytes:
        """``data`` with each carried word's restore strength set to the third of the word
        block's correction (``block``, default the loaded one) that brings the word closest
        to ``img``, the source the stream was coded from (:mod:`textboost.fusion.choice`).
        Only flag bits change: the stream keeps its length, the picture's bytes and words.

        Costs one decode of the stream and the block around its words."""
        from dataclasses import replace

        from textboost.fusion.choice import restore_choice

        block = self.fusion if block is None else block
        if getattr(block, "kind", None) != "words":
            raise ValueError("choosing the restored words needs the word fusion block")
        c = Container.parse(data)
        w, h = c.header.width, c.header.height
        words = decode_words(c.text, w, h)
        if not words:
            return data
        a = self.codec.prepare(img)[0]
        if a.shape[:2] != (h, w):
            raise ValueError(f"image of {a.shape[1]}x{a.shape[0]} px, the stream's is {w}x{h}")
        strengths = restore_choice(_word_fuser(block), a, self.codec.decode(c), words)
        text = with_restore(c.text, w, h, strengths)
        return replace(c, text=text).to_bytes()

    def _analyser(self, text: bool) -> Analyser:
        def analyse(a: np.ndarray, scale: int, meta: CaptureMeta | None) -> Analysis:
            return self.analyse(a, scale, text, meta)

        return analyse

    # -- receiver ----------------------------------------------------------------------

    def decode(
        self,
        data: bytes | Parsed,
        groups: int | None = None,
        fusion: bool | None = None,
        max_pixels: int | None = None,
    ) -> np.ndarray:
        """Decode to an HxWx3 uint8 image: :meth:`receive`'s picture."""
        return self.receive(data, groups, fusion, max_pixels).image

    def receive(
        self,
        data: bytes | Parsed,
        groups: int | None = None,
        fusion: bool | None = None,
        max_pixels: int | None = None,
        guidance: bool = False,
    ) -> Received:
        """The picture and the words of a stream; ``groups=k`` uses only the first k y
        groups; ``data``: the stream, or a :class:`Parsed` one (its container and the words
        a receiver already read, parsed and read no second time).

        With the fusion block (``fusion`` None: if loaded; True: required) the carried
        words are rendered into a guidance map (all zero without words) and fused with
        the decoded image; ``fusion=False`` keeps the codec's own output. The stream is
        parsed once and its words read once; an unreadable text section or a word not
        drawn is a :class:`~textboost.text.render.TextWarning` when fusing, never an
        error. ``guidance``: render the words for the fused picture's mask even when the
        block does not need the map (the word block). ``max_pixels``: as
        :meth:`Codec.decode`.
        """
        if fusion and self.fusion is None:
            raise ValueError(f"{self.model.path.name}: codec loaded without its fusion block")
        parsed = data if isinstance(data, Parsed) else None
        c = self.codec.parse(data if parsed is None else parsed.container)
        out = self.codec.decode(c, groups, max_pixels)
        h, w = out.shape[:2]  # the header's size
        if parsed is None or parsed.words is None:
            words, problem = read_words(c.text, w, h)
        else:
            words, problem = parsed.words, None
        if fusion is False or self.fusion is None:
            return Received(out, words, fused=False)
        # the block draws each word as much as the sender said (Word.restore); a word it
        # may not draw keeps the codec's pixels and stays out of the restored-regions mask
        restored = [wd for wd in words if wd.restore > 0]
        if getattr(self.fusion, "kind", "paper") == "words":  # around the words only
            # rendered for its warnings too (a word cleaned or dropped is told as with the
            # paper's block); the map is allocated lazily, so this costs O(words)
            g = _render(words, problem, w, h)
            if len(restored) < len(words):
                g = _drawn(restored, w, h)
            g = g if guidance else None
            return Received(_word_fuser(self.fusion)(out, words), words, True, g)
        g = _render(words, problem, w, h)
        if len(restored) < len(words):
            g = _drawn(restored, w, h)
        if hasattr(self.fusion, "fuse"):  # exported (textboost.fusion.exported)
            return Received(self.fusion.fuse(out, g.map), words, True, g)
        from textboost.fusion.runtime import apply_fusion

        return Received(apply_fusion(self.fusion, out, g.map), words, True, g)

    def words(self, data: bytes) -> list[Word]:
        """The words a stream carries (its text section), in image pixels."""
        c = Container.parse(data)
        return decode_words(c.text, c.header.width, c.header.height)

    def guidance(
        self, data: bytes, width: int | None = None, height: int | None = None
    ) -> Guidance:
        """The carried words rendered (:class:`textboost.text.render.Guidance`), never
        raising for the text: an unreadable section or a word not drawn (too large,
        nothing printable) is a :class:`~textboost.text.render.TextWarning`."""
        c = Container.parse(data)
        w, h = width or c.header.width, height or c.header.height
        words, problem = read_words(c.text, w, h)
        return _render(words, problem, w, h)


def _word_fuser(block: Any):
    """``fuse(decoded, words)`` for the word block on its backend (torch or exported)."""
    if hasattr(block, "fuse_words"):
        return block.fuse_words
    from textboost.fusion.runtime import fuse

    return lambda decoded, words: fuse(block, decoded, words)


def _drawn(words: list[Word], w: int, h: int) -> Guidance:
    """The words rendered, warnings left to :func:`_render` (which rendered them all)."""
    from textboost.text.render import render_words

    return render_words(words, w, h)


def _render(words: list[Word], problem: str | None, w: int, h: int) -> Guidance:
    """The guidance map of the words read from a text section, with a TextWarning for the
    section's problem and each word not drawn."""
    from textboost.text.render import TextWarning, render_words

    g = render_words(words, w, h)
    for note in ([problem] if problem else []) + g.notes():
        warnings.warn(note, TextWarning, stacklevel=4)
    return g
