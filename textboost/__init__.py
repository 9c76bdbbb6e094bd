"""TextBoost: scene-text-preserving ultra-low-bitrate image compression (Wang et al. 2026)."""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from textboost.bitstream.container import BitstreamError

if TYPE_CHECKING:
    from textboost.codec.api import Codec
    from textboost.pipeline.api import Pipeline

__all__ = ["BitstreamError", "Codec", "Pipeline", "__version__"]

try:
    __version__ = version("textboost-link")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"


def __getattr__(name: str):
    # Lazy so that `import textboost.bitstream.container` stays light on the edge.
    if name == "Codec":
        from textboost.codec.api import Codec

        return Codec
    if name == "Pipeline":
        from textboost.pipeline.api import Pipeline

        return Pipeline
    raise AttributeError(f"module 'textboost' has no attribute {name!r}")
