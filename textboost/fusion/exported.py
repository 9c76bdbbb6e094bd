"""The fusion block on an exported graph (ONNX Runtime, TensorRT): numpy only, no torch.

The codec's backends build the graph's runner (:class:`textboost.codec.exported.FusionGraph`);
this wraps it with the same calls as the torch block (:mod:`textboost.fusion.runtime`), so
a receiver on the edge fuses without torch.
"""

from __future__ import annotations

import numpy as np

from textboost.fusion.stripes import fuse_in_stripes

__all__ = ["OnnxFusion"]


class OnnxFusion:
    """The fusion block on ONNX Runtime: ``fuse_words(decoded, words)`` is
    ``textboost.fusion.runtime.fuse(block, decoded, words)`` for the exported block.

    ``run(x, g)`` computes the unclipped (1, 3, H, W) output of float (1, 3, H, W) and
    (1, C, H, W) inputs: the guidance map (C = 1) for the paper's block (``kind``
    "paper"), the word inputs (C = 7) for the word block ("words"); another backend
    (TensorRT) can supply it.
    """

    def __init__(self, run, model_id: str | None = None, kind: str = "paper") -> None:
        if kind not in ("paper", "words"):
            raise ValueError(f"fusion block kind {kind!r}: expected 'paper' or 'words'")
        self.run = run
        self.model_id = model_id
        self.kind = kind

    @classmethod
    def from_session(cls, session, model_id: str | None = None, kind: str = "paper") -> OnnxFusion:
        names = [i.name for i in session.get_inputs()]

        def run(x: np.ndarray, g: np.ndarray) -> np.ndarray:
            return session.run(None, {names[0]: x, names[1]: g})[0]

        return cls(run, model_id, kind)

    def fuse(self, decoded: np.ndarray, guidance: np.ndarray | None = None) -> np.ndarray:
        """The paper's block over the whole image with a guidance map (None: all zero)."""
        if self.kind != "paper":
            raise ValueError("the word fusion block takes words (fuse_words), not a map")
        return fuse_in_stripes(self.run, decoded, guidance)

    def fuse_words(self, decoded: np.ndarray, words: list) -> np.ndarray:
        if self.kind == "words":
            from textboost.fusion.word_inputs import fuse_words

            return fuse_words(self.run, decoded, words)
        from textboost.text.render import render_guidance

        h, w = decoded.shape[:2]
        return self.fuse(decoded, render_guidance(words, w, h))

    __call__ = fuse
