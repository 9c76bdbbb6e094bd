"""Fusion weights on disk and the receiver's call: uint8 image and the carried words in, uint8 out.

The weights are a small safetensors file beside the codec model they were trained on
(``tb-small-cpu3.safetensors`` → ``tb-small-cpu3.fusion.safetensors``). The block
learned to correct that codec's artefacts, so the file records the codec's model id
and :func:`load_fusion` refuses it for another codec when given the id.

Two kinds of block, told apart by the file's ``format``:

- ``textboost-fusion/1``: the paper's block (:class:`FusionBlock`), run over the whole
  image with the guidance map (older files; the reference and ablation);
- ``textboost-fusion/2`` with ``block: words``: the word block (:class:`WordFusionNet`),
  run only in tiles around the carried words (:func:`textboost.fusion.word_inputs.
  fuse_words`); every other pixel is the codec's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from textboost.fusion.model import FUSION_CHANNELS, FusionBlock
from textboost.fusion.stripes import fuse_in_stripes
from textboost.fusion.word_block import WordFusionNet
from textboost.fusion.word_inputs import WordStyle, fuse_words
from textboost.text.words import Word

__all__ = ["apply_fusion", "fuse", "fusion_metadata", "load_fusion", "save_fusion"]

FILE_FORMAT = "textboost-fusion/1"  # the paper's block, whole image
WORDS_FORMAT = "textboost-fusion/2"  # the word block, around words only
FORMATS = (FILE_FORMAT, WORDS_FORMAT)


def save_fusion(
    block: FusionBlock | WordFusionNet, path: str | Path, model_id: bytes, card: dict | None = None
) -> None:
    """Write the block's weights (fp32: a few thousand parameters) with the codec's id."""
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in block.state_dict().items()}
    if isinstance(block, WordFusionNet):
        kind = {"format": WORDS_FORMAT, "block": "words",
                "channels": ",".join(map(str, block.channels))}  # fmt: skip
    else:
        kind = {"format": FILE_FORMAT, "channels": str(block.project.in_channels)}
    meta = {**kind, "model_id": model_id.hex(), "card": json.dumps(card or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)


def fusion_metadata(path: str | Path) -> dict:
    """The file's metadata: format, channels, model_id (hex) and card (a dict)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fusion weights {path} do not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable safetensors fusion file ({e})") from e
    if meta.get("format") not in FORMATS:
        raise ValueError(
            f"{path}: metadata format {meta.get('format')!r}, expected one of {FORMATS}"
        )
    meta["card"] = json.loads(meta.get("card", "{}"))
    return meta


def load_fusion(path: str | Path, model_id: bytes | None = None) -> FusionBlock | WordFusionNet:
    """The fusion block in eval mode; with ``model_id``, refuse weights of another codec."""
    meta = fusion_metadata(path)
    if model_id is not None and meta.get("model_id") != model_id.hex():
        raise ValueError(
            f"{path}: fusion weights trained on codec {meta.get('model_id')}, "
            f"this codec is {model_id.hex()}"
        )
    try:
        if meta["format"] == WORDS_FORMAT:
            block = WordFusionNet(tuple(int(c) for c in meta["channels"].split(",")))
        else:
            block = FusionBlock(int(meta.get("channels", FUSION_CHANNELS)))
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path}: bad channels {meta.get('channels')!r} ({e})") from e
    try:
        block.load_state_dict(load_file(str(path)))
    except RuntimeError as e:
        raise ValueError(f"{path}: fusion weights do not fit the block ({e})") from e
    return block.eval()


def apply_fusion(
    block: FusionBlock, decoded: np.ndarray, guidance: np.ndarray | None = None
) -> np.ndarray:
    """Fuse an HxWx3 uint8 decoded image with an HxW float guidance map in [0, 1], in row
    stripes (:func:`textboost.fusion.stripes.fuse_in_stripes`); None: the all-zero map."""
    device = next(block.parameters()).device

    def run(x: np.ndarray, g: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            y = block(torch.from_numpy(x).to(device), torch.from_numpy(g).to(device))
            return y.cpu().numpy()

    return fuse_in_stripes(run, decoded, guidance)


def fuse(
    block: FusionBlock | WordFusionNet,
    decoded: np.ndarray,
    words: list[Word],
    styles: list[WordStyle | None] | None = None,
) -> np.ndarray:
    """The receiver's fusion of a decoded HxWx3 uint8 image with the words it carries:
    the word block around the words only, the paper's block over the whole image."""
    if isinstance(block, WordFusionNet):
        device = next(block.parameters()).device

        def run(x: np.ndarray, inputs: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                y = block(torch.from_numpy(x).to(device), torch.from_numpy(inputs).to(device))
                return y.cpu().numpy()

        return fuse_words(run, decoded, words, styles)
    from textboost.text.render import render_guidance

    h, w = decoded.shape[:2]
    return apply_fusion(block, decoded, render_guidance(words, w, h))
