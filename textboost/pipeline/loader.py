"""The one way the runtime gets its pipeline (the codec, the spotter, the fusion block):
loaded once, on first use, never at import.

The model id is known before the codec is: it is read from the model file with numpy
alone, so an encode cache can answer a hit on the edge without importing torch or an ONNX
runtime. Both nodes and the simulator hold a :class:`PipelineLoader`; it is also the
``codec_factory`` callable they take.

    loader = PipelineLoader()              # the shipped default model, torch backend
    loader.model_id                     # reads the model file only
    pipe = loader()                     # loads the pipeline (once)

    PipelineLoader(backend="onnxruntime", onnx_dir="onnx/").check()   # fail early, one line

A node's command line calls :meth:`PipelineLoader.check` before it starts, so that a missing
runtime or missing exported graphs are one line at start-up, not a failure per image.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textboost.pipeline.api import Pipeline

__all__ = ["PipelineLoader"]


class PipelineLoader:
    """Loads the pipeline on the first call and returns the same one after.

    Args:
        model: model file (None: the shipped default).
        backend, device, onnx_dir: as :meth:`Pipeline.load` (``onnx_dir``: the folder of
            ``python -m export onnx`` for the exported backends; None: the model id's cache
            folder).
        fusion: as :meth:`Pipeline.load` (None: the fusion block when it ships beside the
            model; False: never, as a sender needs).
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
        onnx_dir: str | Path | None = None,
        fusion: bool | None = None,
        factory: Callable[[], Any] | None = None,
        model_id: bytes | None = None,
    ) -> None:
        self.model = model
        self.backend = backend
        self.device = device
        self.onnx_dir = onnx_dir
        self.fusion = fusion
        self._factory = factory
        self._codec: Any = None
        self._model_id = model_id

    def __getstate__(self) -> dict[str, Any]:
        """Sent to another process unloaded: it loads its own codec there (the ground's
        preview process, :mod:`downlink.preview`)."""
        return {**self.__dict__, "_codec": None}

    @property
    def loaded(self) -> bool:
        return self._codec is not None

    def __call__(self) -> Pipeline:
        if self._codec is None:
            if self._factory is not None:
                self._codec = self._factory()
            else:
                from textboost.pipeline.api import Pipeline

                self._codec = Pipeline.load(
                    self.model,
                    backend=self.backend,
                    device=self.device,
                    onnx_dir=self.onnx_dir,
                    fusion=self.fusion,
                )
        return self._codec

    def check(self) -> None:
        """Raise now, with a one-line message naming what is missing, if the codec cannot
        load: the model file, the backend's runtime, the exported graphs (with the
        ``python -m export onnx`` command that writes them), the fusion graph.

        An exported backend is loaded here (cheap: it reads the export's metadata and
        checksums; ONNX Runtime sessions are built on first use). The torch backend is
        only looked for, so that a node whose encode cache answers never imports torch.

        Raises:
            ValueError: unknown backend, unreadable model file.
            FileNotFoundError: model file or exported graphs missing
                (:class:`~textboost.codec.exported.ExportError`).
            RuntimeError: the backend's runtime is not installed here
                (:class:`~textboost.codec.exported.BackendUnavailable`).
        """
        if self._factory is not None or self._codec is not None:
            return
        from textboost.codec.backends import BACKENDS
        from textboost.codec.exported import BackendUnavailable

        if self.backend not in BACKENDS:
            raise ValueError(
                f"backend {self.backend!r} unknown; expected one of: {', '.join(BACKENDS)}"
            )
        self.model_id  # noqa: B018  (reads the model file: missing or unreadable raises)
        if self.backend == "torch":
            import importlib.util

            try:
                found = importlib.util.find_spec("torch") is not None
            except ImportError:
                found = False
            if not found:
                raise BackendUnavailable(
                    "backend 'torch': torch is not installed here; use --backend onnxruntime "
                    "(graphs from `python -m export onnx`) or tensorrt"
                )
            return
        self()

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
