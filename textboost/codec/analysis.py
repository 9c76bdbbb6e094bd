"""What the budget search, refinement and the rate model work on: an analysed image and
the codec calls they make.

:class:`Analysis` holds the sender-side latents of one image (reusable across rates);
:class:`LatentCodec` is the part of :class:`textboost.codec.api.Codec` they use. Both live
here, below the modules that use them, so that ``api`` imports ``budget``, ``refine`` and
``estimate`` and none of them imports ``api`` back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from textboost.bitstream.capture import CaptureMeta
from textboost.bitstream.container import FULL_SCALE, Header

if TYPE_CHECKING:
    from textboost.codec.backends import Transforms
    from textboost.codec.coder import TableSet
    from textboost.codec.config import CodecConfig
    from textboost.codec.params import Observer
    from textboost.codec.weights import ModelFile

__all__ = ["Analysis", "LatentCodec"]


@dataclass
class Analysis:
    """Sender-side latents of one image, reusable across rates (budget search)."""

    width: int  # the image's size; the latents code it at ``scale`` eighths smaller
    height: int
    y: np.ndarray  # (1, h, w, M) float64
    z: np.ndarray  # (1, hz, wz, Cz) float64
    image: np.ndarray  # the source RGB, kept so that a budget can re-analyse it smaller
    scale: int = FULL_SCALE
    # the container's text section, carried in every candidate and so counted in the
    # budget (the pipeline fills it from the words spotted on the full-size image)
    text: bytes = b""
    meta: CaptureMeta | None = None  # capture metadata, carried in the header
    # the image at the coded size, what g_a saw: smaller scales are resampled from it, not
    # from the source (a 12 MP frame is read once), and the budget search compares there
    coded: np.ndarray | None = None


class LatentCodec(Protocol):
    """The codec as the budget search, refinement and the rate model see it."""

    model: ModelFile
    cfg: CodecConfig
    transforms: Transforms
    y_tables: TableSet
    z_tables: TableSet
    gain_anchors_q6: np.ndarray
    z_gain_anchors_q6: np.ndarray

    @property
    def n_groups(self) -> int: ...

    def analyse_smaller(self, an: Analysis, scale: int) -> Analysis: ...

    def encode_analysis(
        self, an: Analysis, rate_q: int, observe: Observer | None = None
    ) -> bytes: ...

    def decode_coded(
        self, data: bytes, groups: int | None = None, max_pixels: int | None = None
    ) -> tuple[Header, np.ndarray]: ...

    def quantise_z(self, z: np.ndarray, rate_q: int) -> np.ndarray: ...

    def hyper(self, z_hat: np.ndarray, rate_q: int) -> np.ndarray: ...
