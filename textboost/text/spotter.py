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
    orientation from the quad. ``threads`` bounds ONNX Runtime's intra-op threads (-1: one
    per core); its worker threads never spin while they wait, which is what makes more than
    one affordable beside g_a: on two loaded cores the wheel's spinning threads cost 1.40
    CPU seconds a spot at 1024×768 against 0.78 for one thread. Two non-spinning threads
    are the default: on two quiet cores (kodim03 with text, ONNX Runtime codec, steady
    state) the sender's encode took 739 ms at 1024×768 against 971 ms with one thread,
    for 10 % more CPU time.

    ``det_max_side``: a longer image side is resized to this before detection (the wheel's
    2000); recognition crops come from that resized image.
    """

    def __init__(
        self,
        threads: int = 2,
        text_score: float = 0.5,
        det_max_side: int = 2000,
    ) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as e:  # pragma: no cover - a dependency of the package
            raise ImportError(
                "the text path needs rapidocr-onnxruntime (pip install rapidocr-onnxruntime)"
            ) from e
        if det_max_side < 64:
            raise ValueError(f"det_max_side {det_max_side}: expected >= 64 px")
        self.text_score = text_score
        self._engine = RapidOCR(
            use_cls=False,
            text_score=text_score,
            intra_op_num_threads=threads,
            inter_op_num_threads=1,
            max_side_len=det_max_side,
        )
        # the detector's normalisation of each byte value, per channel (256, 3) float32
        values = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)[np.newaxis]
        pre = self._engine.text_det.get_preprocess(0)
        self._det_table = pre.normalize(values)[0].astype(np.float32)
        # the wheel's sessions let idle intra-op threads spin, which on a shared CPU burns
        # the time other work (g_a beside it) needs: the same models, spinning off
        paths = _model_paths()
        self._engine.text_det.infer.session = _session(paths["Det"], threads)
        self._engine.text_rec.session.session = _session(paths["Rec"], threads)

    def spot(self, img: np.ndarray) -> list[Word]:
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(
                f"spotter input of shape {img.shape} {img.dtype}, expected HxWx3 uint8"
            )
        e = self._engine
        raw_h, raw_w = img.shape[:2]
        bgr, ratio_h, ratio_w = e.preprocess(np.ascontiguousarray(img[:, :, ::-1]))
        bgr, record = e.maybe_add_letterbox(bgr, {})
        boxes = self._detect(bgr)
        if not len(boxes):
            return []
        crops = e.get_crop_img_list(bgr, boxes)
        # the wheel's batches of 6, padded to the widest crop and to 320 px: reading each crop
        # at its own width is ≈ 40 % less work but reads worse (OpenALPR US plates 94/148
        # against 104/148, ICDAR 2015 toy E2E F1 0.138 against 0.308)
        reads = [(t, s) for t, s, *_ in e.text_rec(crops)[0]]
        words = []
        # back to the input's pixels as the wheel does it (in float32: the same quads)
        quads = np.array(boxes, dtype=np.float32)
        quads[..., 1] -= record["padding_1"]["top"]
        quads[..., 0] *= ratio_w
        quads[..., 1] *= ratio_h
        quads = np.clip(quads, 0, np.array([raw_w, raw_h], dtype=np.float32))
        for quad, (text, score) in zip(quads, reads, strict=True):
            if float(score) < self.text_score or not str(text).strip():
                continue
            quad = np.asarray(quad, dtype=np.float64)
            words.append(Word(reading_order(quad, len(text)), str(text), float(score)))
        return words

    def _detect(self, bgr: np.ndarray) -> list[np.ndarray]:
        """The wheel's detection, its input normalised through a table (the wheel computes
        it in float64 over the whole image: 0.11 of 2.2 CPU s at 12 MP); same values."""
        det = self._engine.text_det
        resized = det.get_preprocess(max(bgr.shape[:2])).resize(bgr)
        if resized is None:
            return []
        x = self._det_table[resized, np.arange(3)].transpose(2, 0, 1)[np.newaxis]
        boxes, _ = det.postprocess_op(det.infer(np.ascontiguousarray(x))[0], bgr.shape[:2])
        boxes = det.filter_tag_det_res(boxes, bgr.shape[:2])
        return self._engine.sorted_boxes(boxes) if len(boxes) else []


def _model_paths() -> dict[str, str]:
    """The wheel's detection and recognition model files, from its own configuration."""
    from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
    from rapidocr_onnxruntime.utils import read_yaml, update_model_path

    cfg = update_model_path(read_yaml(str(DEFAULT_CFG_PATH)))
    return {k: cfg[k]["model_path"] for k in ("Det", "Rec")}


def _session(path: str, threads: int):
    """An ONNX Runtime CPU session of the model at ``path``: ``threads`` intra-op threads
    (-1: ONNX Runtime's default), no spinning, the wheel's other options."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    opts.enable_cpu_mem_arena = False
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads > 0:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


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
