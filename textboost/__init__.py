"""TextBoost: scene-text-preserving ultra-low-bitrate image compression (Wang et al. 2026)."""

from textboost.codec.api import Codec
from textboost.codec.container import BitstreamError

__all__ = ["BitstreamError", "Codec"]
