"""Text spotting on the edge: a `Spotter` protocol and the RapidOCR adapters (ONNX, CPU).

``RapidOcrSpotter`` runs PP-OCRv4 from the ``rapidocr-onnxruntime`` wheel (the default);
``PpOcrV6Spotter`` runs PP-OCRv6 small from the ``rapidocr`` 3.x wheel (compared in
``benchmarks/spotter_compare.py``). Neither needs torch or downloads anything: the
detection and recognition ONNX models, and the recogniser's dictionary (in the model's
metadata), ship inside the wheels.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from textboost.text.words import Word, reading_order

__all__ = ["PpOcrV6Spotter", "RapidOcrSpotter", "Spotter", "default_spotter"]


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


class PpOcrV6Spotter:
    """PP-OCRv6 small detection + recognition through ONNX Runtime (``rapidocr`` ≥ 3.9).

    Same contract as :class:`RapidOcrSpotter`: angle classifier off, ``threads`` bounds
    ONNX Runtime's intra-op threads. The models are the wheel's own
    (``rapidocr/models/PP-OCRv6_*_small.onnx``); rapidocr fetches a model only when the
    configured one is missing, and these are present.
    """

    def __init__(self, threads: int = -1, text_score: float = 0.5) -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError as e:
            raise ImportError("PP-OCRv6 needs rapidocr>=3.9 (pip install 'rapidocr>=3.9')") from e
        self._engine = RapidOCR(
            params={
                "Global.use_cls": False,
                "Global.text_score": text_score,
                "Global.log_level": "warning",
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            }
        )

    def spot(self, img: np.ndarray) -> list[Word]:
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(
                f"spotter input of shape {img.shape} {img.dtype}, expected HxWx3 uint8"
            )
        out = self._engine(np.ascontiguousarray(img[:, :, ::-1]), use_cls=False)
        if out.boxes is None or out.txts is None:
            return []
        return [
            Word(
                reading_order(np.asarray(box, dtype=np.float64), len(text)), str(text), float(score)
            )
            for box, text, score in zip(out.boxes, out.txts, out.scores, strict=True)
            if str(text).strip()
        ]


_DEFAULT: Spotter | None = None


def default_spotter() -> Spotter:
    """A process-wide RapidOCR spotter, built on first use (loading takes ~0.3 s)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = RapidOcrSpotter()
    return _DEFAULT
