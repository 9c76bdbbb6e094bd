"""The entrants of the text benchmark: how each one turns an image and a byte budget into a
decoded picture (:class:`Coded`).

- ``original``: the source, uncompressed (handled by the caller);
- ``avif``: AVIF at equal bytes, the best-PSNR file over quality × downscale that fits;
- ``codec``: the codec alone, ``encode_to_budget(img, max_bytes=N, text=False)``;
- ``textboost``: the words carried inside the budget, decoded with the shipped fusion
  block (whichever kind ships beside the model);
- ``paper``: the same stream through the paper's block (§4.2) over the whole image
  (``paper_fusion``: default the ``<model>.paper-fusion.safetensors`` in the zoo, else the
  shipped file when it is that kind);
- ``words``: the same stream through the word block, only around the carried words
  (``word_fusion``: default the shipped file when it is that kind);
- ``closer``: the same stream with the sender's choice of restored words
  (:meth:`Pipeline.choose_restored`: the word block only where it brings a word closer
  to the original), through the word block;
- ``plain``: the same stream decoded with no block at all: the codec's picture at the
  budget less the words' bytes, so that the whole-image PSNR a TextBoost entrant gives up
  against ``codec`` splits into what the words' bytes cost (``plain`` − ``codec``) and
  what its block gives back (entrant − ``plain``).

The TextBoost entrants decode one stream per budget (encoded once per image and budget),
so they differ only in the fusion block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from textboost.eval.budget import reconstruct, search_budgets
from textboost.text.words import Word

__all__ = [
    "ENTRANTS",
    "FUSED",
    "LABELS",
    "MAX_WORKERS",
    "Coded",
    "EntrantOptions",
    "entrant_settings",
    "get_entrant",
]  # fmt: skip

ENTRANTS: tuple[str, ...] = (
    "original", "avif", "codec", "textboost", "paper", "words", "closer", "plain"
)  # fmt: skip
FUSED = ("textboost", "paper", "words", "closer", "plain")  # one stream, five decoders
LABELS = {
    "original": "original (uncompressed)",
    "avif": "AVIF (libaom), best of quality x downscale",
    "codec": "codec alone",
    "textboost": "TextBoost",
    "paper": "TextBoost with the paper's block",
    "words": "TextBoost with the word block",
    "closer": "TextBoost with the word block on the words it brings closer to the original",
    "plain": "TextBoost's stream, no block",
}
MAX_WORKERS = 2  # the CPU is shared: never more than two processes


@dataclass(frozen=True)
class EntrantOptions:
    """What the entrants need beyond their names."""

    avif_divisors: tuple[float, ...]
    workers: int = 1
    paper_fusion: Path | None = None
    word_fusion: Path | None = None
    # where each (image, budget, words on/off) stream is kept once coded, so a resumed or
    # later run (another entrant on the same stream) decodes it instead of coding it again
    stream_dir: Path | None = None
    colours: bool = False  # the TextBoost streams carry each word's two colours (3 B a word)


@dataclass(frozen=True)
class Coded:
    """One entrant's file at one budget: its size, text bytes, decoded image and how."""

    n_bytes: int
    text_bytes: int
    image: np.ndarray
    detail: dict[str, Any] = field(default_factory=dict)
    carried: list[Word] | None = None  # words in the text section (TextBoost)


# -- entrants -----------------------------------------------------------------------------


class _AvifEntrant:
    name = "avif"

    def __init__(self, divisors: Sequence[float]) -> None:
        from textboost.eval.baselines import get_baseline

        self.codec = get_baseline("avif")
        self.divisors = tuple(divisors)

    @property
    def settings(self) -> dict[str, Any]:
        return {
            **self.codec.settings,
            "downscale_divisors": list(self.divisors),
            "quality_range": [self.codec.quality_min, self.codec.quality_max],
            "selection": "best PSNR among the files that fit (textboost.eval.budget)",
            "resampling": "Lanczos (Pillow) down and up",
        }

    def code_all(self, img: np.ndarray, budgets: Sequence[int]) -> list[Coded | None]:
        h, w = img.shape[:2]
        search = search_budgets(img, self.codec, budgets, self.divisors)
        out: list[Coded | None] = []
        for cand in search.best:
            if cand is None:
                out.append(None)
                continue
            detail = {
                "quality": cand.quality,
                "downscale": cand.divisor,
                "coded_size": list(cand.coded_size),
            }
            out.append(Coded(cand.n_bytes, 0, reconstruct(self.codec, cand, (w, h)), detail))
        return out


_CODECS: dict[bool, Any] = {}  # one loaded model per process (per colours setting)


def _load_codec(threads: int, colours: bool = False) -> Any:
    if colours not in _CODECS:
        import torch

        from textboost.pipeline.api import Pipeline
        from textboost.text.filter import TextFilter

        torch.set_num_threads(threads)
        flt = TextFilter(colours=True) if colours else None
        _CODECS[colours] = Pipeline.load(text_filter=flt)
    return _CODECS[colours]


def _fusion_file(path: Path) -> dict[str, Any]:
    """Name and metadata of a fusion weights file."""
    from textboost.fusion.runtime import fusion_metadata

    try:
        return {"file": path.name, **fusion_metadata(path)}
    except (OSError, ValueError) as exc:
        return {"file": path.name, "error": str(exc)}


def _codec_settings(codec: Any, threads: int, text: bool) -> dict[str, Any]:
    s: dict[str, Any] = {
        "library": "textboost",
        "model_id": codec.model_id.hex(),
        "encode": f"encode_to_budget(img, max_bytes=budget, text={text})",
        "backend": "torch",
        "device": "cpu",
        "torch_threads": threads,
    }
    if text:
        s["text_filter"] = repr(codec.text_filter)
    return s


class _CodecEntrant:
    """The codec alone: no words carried, its own output."""

    name = "codec"

    def __init__(self, threads: int, stream_dir: Path | None = None) -> None:
        self.threads = threads
        self.codec = _load_codec(threads)
        self.stream_dir = stream_dir

    @property
    def settings(self) -> dict[str, Any]:
        return {**_codec_settings(self.codec, self.threads, False), "fusion": False,
                "decode": "decode(data, fusion=False)"}  # fmt: skip

    def code_all(self, img: np.ndarray, budgets: Sequence[int]) -> list[Coded | None]:
        out: list[Coded | None] = []
        for b in budgets:
            s = _stream(self.codec, img, b, text=False, stream_dir=self.stream_dir)
            out.append(None if s is None else Coded(s.n_bytes, s.text_bytes, s.plain, s.detail))
        return out


@dataclass(frozen=True)
class _Stream:
    data: bytes
    text_bytes: int
    plain: np.ndarray  # the codec's own output
    detail: dict[str, Any]
    words: list[Word]  # carried

    @property
    def n_bytes(self) -> int:
        return len(self.data)


_STREAMS: dict[tuple, _Stream | None] = {}  # this image's streams, shared by the entrants


def _stream(
    codec: Any, img: np.ndarray, budget: int, text: bool, stream_dir: Path | None = None
) -> _Stream | None:
    """The stream of ``img`` at ``budget`` (None: nothing fits), encoded once per image
    (and once in all with ``stream_dir``: a stream coded before is read from there; a
    budget nothing fits is kept as an empty file)."""
    import hashlib

    from textboost.bitstream.container import Container
    from textboost.codec.budget import BudgetError
    from textboost.codec.exact import RATE_MAX

    colours = bool(text and codec.text_filter.colours)
    key = (hashlib.sha1(np.ascontiguousarray(img).data).hexdigest(), budget, text, colours)
    kept = None
    if stream_dir is not None:
        tag = ("words-colours" if colours else "words") if text else "plain"
        kept = stream_dir / f"{codec.model_id.hex()[:12]}-{key[0][:20]}-{budget}-{tag}.tbx"
    if key not in _STREAMS:
        if any(k[0] != key[0] for k in _STREAMS):
            _STREAMS.clear()  # a new image
        if kept is not None and kept.is_file():
            data = kept.read_bytes()
        else:
            try:
                data = codec.encode_to_budget(img, max_bytes=budget, text=text)
            except BudgetError:
                data = b""
        if len(data) > budget:
            raise AssertionError(f"encode_to_budget returned {len(data)} B for {budget} B")
        stream = None
        if data:
            c = Container.parse(data)
            detail = {"rate": c.header.rate / RATE_MAX, "coded_size": list(c.header.coded_size)}
            words = codec.words(data) if text else []
            plain = codec.decode(data, fusion=False)
            stream = _Stream(data, len(c.text), plain, detail, words)
        _STREAMS[key] = stream
    stream = _STREAMS[key]
    if kept is not None and not kept.is_file():
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_bytes(b"" if stream is None else stream.data)
    return stream


class _FusedEntrant:
    """TextBoost's stream (words carried) decoded through one fusion block (None: the
    codec's own output with the words beside it)."""

    def __init__(
        self,
        name: str,
        threads: int,
        block: Any,
        source: dict[str, Any] | None,
        stream_dir: Path | None = None,
        colours: bool = False,
    ) -> None:
        self.name = name
        self.threads = threads
        self.codec = _load_codec(threads, colours)
        self.block = block
        self.source = source
        self.stream_dir = stream_dir

    @property
    def settings(self) -> dict[str, Any]:
        s = _codec_settings(self.codec, self.threads, True)
        s["fusion"] = self.block is not None
        s["decode"] = "decode(data, fusion=False), then textboost.fusion.runtime.fuse(block, "
        s["decode"] += "image, carried words)" if self.block is not None else "nothing)"
        if self.block is not None:
            s["fusion_kind"] = getattr(self.block, "kind", "paper")
            s["fusion_file"] = self.source
        return s

    def code_all(self, img: np.ndarray, budgets: Sequence[int]) -> list[Coded | None]:
        from textboost.fusion.runtime import fuse

        out: list[Coded | None] = []
        for b in budgets:
            s = _stream(self.codec, img, b, text=True, stream_dir=self.stream_dir)
            if s is None:
                out.append(None)
                continue
            words = s.words
            if self.name == "closer":  # the sender's choice, made on the real stream
                words = self.codec.words(self.codec.choose_restored(s.data, img, self.block))
            # each word as much as carried (a stream of encode_to_budget: all of it)
            image = s.plain if self.block is None else fuse(self.block, s.plain, words)
            out.append(Coded(s.n_bytes, s.text_bytes, image, s.detail, s.words))
        return out


def _fused(name: str, opts: EntrantOptions, threads: int) -> _FusedEntrant:
    from textboost.codec.weights import fusion_path
    from textboost.fusion.runtime import fusion_metadata, load_fusion

    codec = _load_codec(threads)
    shipped = fusion_path(codec.model.path)
    if name == "textboost":
        src = _fusion_file(shipped) if codec.fusion is not None else None
        return _FusedEntrant(name, threads, codec.fusion, src, opts.stream_dir, opts.colours)
    if name == "plain":
        return _FusedEntrant(name, threads, None, None, opts.stream_dir, opts.colours)
    want = "textboost-fusion/1" if name == "paper" else "textboost-fusion/2"  # closer: words
    given = opts.paper_fusion if name == "paper" else opts.word_fusion
    default = shipped.with_name(shipped.name.replace(".fusion.", ".paper-fusion."))
    candidates = [given] if given is not None else (
        [default, shipped] if name == "paper" else [shipped]
    )  # fmt: skip
    for path in candidates:
        if path is not None and path.is_file() and fusion_metadata(path)["format"] == want:
            block = load_fusion(path, model_id=codec.model_id)
            return _FusedEntrant(
                name, threads, block, _fusion_file(path), opts.stream_dir, opts.colours
            )
    what = "paper's block" if name == "paper" else "word block"
    raise FileNotFoundError(
        f"no {what} ({want}) among {[str(p) for p in candidates]}; give "
        f"--{'paper' if name == 'paper' else 'word'}-fusion FILE"
    )


_ENTRANTS: dict[tuple[str, EntrantOptions], Any] = {}


def get_entrant(name: str, opts: EntrantOptions) -> Any:
    """The entrant ``name`` of this process with these options (built once)."""
    key = (name, opts)
    if key not in _ENTRANTS:
        threads = max(1, MAX_WORKERS // opts.workers)  # two cores at most in all
        if name == "avif":
            _ENTRANTS[key] = _AvifEntrant(opts.avif_divisors)
        elif name == "codec":
            _ENTRANTS[key] = _CodecEntrant(threads, opts.stream_dir)
        elif name in FUSED:
            _ENTRANTS[key] = _fused(name, opts, threads)
        else:
            raise ValueError(f"unknown entrant {name!r}")
    return _ENTRANTS[key]


def entrant_settings(names: Sequence[str], opts: EntrantOptions) -> dict[str, Any]:
    """Settings of each entrant that can run, and why each other one cannot."""
    settings: dict[str, Any] = {}
    for n in names:
        if n == "original":
            settings[n] = {"note": "the source file decoded, no compression"}
            continue
        try:
            settings[n] = get_entrant(n, opts).settings
        except Exception as exc:  # reported in the result, not fatal
            settings[n] = {"unavailable": f"{type(exc).__name__}: {exc}"}
    return settings
