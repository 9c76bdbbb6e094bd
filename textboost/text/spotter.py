"""Text spotting on the edge: a `Spotter` protocol and the RapidOCR (PP-OCRv4, ONNX) adapter.

The adapter needs no torch and downloads nothing: the detection and recognition ONNX
models ship inside the ``rapidocr-onnxruntime`` wheel.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from textboost.text.words import Word, reading_order

__all__ = ["RapidOcrSpotter", "Spotter", "default_spotter"]


class Spotter(Protocol):
    """Anything that finds words in an HxWx3 uint8 RGB image."""

    def spot(self, img: np.ndarray) -> list[Word]: ...


class RapidOcrSpotter:
    """PP-OCRv4 detection + recognition through ONNX Runtime (``rapidocr-onnxruntime``).

    The angle classifier is off: it costs time on the edge and the renderer takes the
    orientation from the quad. ``threads`` bounds ONNX Runtime's intra-op threads (-1: all).
    """

    def __init__(self, threads: int = -1, text_score: float = 0.5) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as e:  # pragma: no cover - a dependency of the package
            raise ImportError(
                "the text path needs rapidocr-onnxruntime (pip install rapidocr-onnxruntime)"
            ) from e
        self._engine = RapidOCR(
            use_cls=False,
            text_score=text_score,
            intra_op_num_threads=threads,
            inter_op_num_threads=1,
        )

    def spot(self, img: np.ndarray) -> list[Word]:
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(
                f"spotter input of shape {img.shape} {img.dtype}, expected HxWx3 uint8"
            )
        result, _ = self._engine(np.ascontiguousarray(img[:, :, ::-1]), use_cls=False)
        return [
            Word(
                reading_order(np.asarray(box, dtype=np.float64), len(text)), str(text), float(score)
            )
            for box, text, score in (result or [])
            if str(text).strip()
        ]


_DEFAULT: Spotter | None = None


def default_spotter() -> Spotter:
    """A process-wide RapidOCR spotter, built on first use (loading takes ~0.3 s)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = RapidOcrSpotter()
    return _DEFAULT
