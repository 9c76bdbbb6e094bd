"""The one way the runtime gets its codec: loaded once, on first use, never at import.

The model id is known before the codec is: it is read from the model file with numpy
alone, so an encode cache can answer a hit on the edge without importing torch or an ONNX
runtime. Both nodes and the simulator hold a :class:`CodecLoader`; it is also the
``codec_factory`` callable they take.

    loader = CodecLoader()              # the shipped default model, torch backend
    loader.model_id                     # reads the model file only
    codec = loader()                    # loads the codec (once)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textboost.codec.api import Codec

__all__ = ["CodecLoader"]


class CodecLoader:
    """Loads a codec on the first call and returns the same one after.

    Args:
        model: model file (None: the shipped default).
        backend, device: as :meth:`Codec.load`.
        factory: builds the codec instead (an already-loaded codec, a synthetic one);
            then the model id is the built codec's, so asking for it loads it, unless
            ``model_id`` gives it.
        model_id: the factory's model id, when known without building the codec.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        backend: str = "torch",
        device: str = "cpu",
        factory: Callable[[], Any] | None = None,
        model_id: bytes | None = None,
    ) -> None:
        self.model = model
        self.backend = backend
        self.device = device
        self._factory = factory
        self._codec: Any = None
        self._model_id = model_id

    @property
    def loaded(self) -> bool:
        return self._codec is not None

    def __call__(self) -> Codec:
        if self._codec is None:
            if self._factory is not None:
                self._codec = self._factory()
            else:
                from textboost.codec.api import Codec

                self._codec = Codec.load(self.model, backend=self.backend, device=self.device)
        return self._codec

    @property
    def model_id(self) -> bytes:
        """The 4-byte model id; without a ``factory`` this reads the model file only."""
        if self._model_id is None:
            if self._codec is not None or self._factory is not None:
                self._model_id = bytes(self().model_id)
            else:
                from textboost.codec.weights import ModelFile

                self._model_id = ModelFile.load(self.model).model_id
        return self._model_id
