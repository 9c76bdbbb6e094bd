"""Fusion weights on disk and the receiver's call: uint8 image and guidance map in, uint8 out.

The weights are a small safetensors file beside the codec model they were trained on
(``tb-small-cpu3.safetensors`` → ``tb-small-cpu3.fusion.safetensors``). The block
learned to correct that codec's artefacts, so the file records the codec's model id
and :func:`load_fusion` refuses it for another codec when given the id.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from textboost.codec.weights import fusion_path
from textboost.fusion.model import FUSION_CHANNELS, FusionBlock
from textboost.fusion.stripes import fuse_in_stripes

__all__ = ["apply_fusion", "fusion_metadata", "fusion_path", "load_fusion", "save_fusion"]

FILE_FORMAT = "textboost-fusion/1"


def save_fusion(
    block: FusionBlock, path: str | Path, model_id: bytes, card: dict | None = None
) -> None:
    """Write the block's weights (fp32: a few thousand parameters) with the codec's id."""
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in block.state_dict().items()}
    meta = {
        "format": FILE_FORMAT,
        "channels": str(block.project.in_channels),
        "model_id": model_id.hex(),
        "card": json.dumps(card or {}),
    }
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
    if meta.get("format") != FILE_FORMAT:
        raise ValueError(
            f"{path}: metadata format {meta.get('format')!r}, expected {FILE_FORMAT!r}"
        )
    meta["card"] = json.loads(meta.get("card", "{}"))
    return meta


def load_fusion(path: str | Path, model_id: bytes | None = None) -> FusionBlock:
    """The fusion block in eval mode; with ``model_id``, refuse weights of another codec."""
    meta = fusion_metadata(path)
    if model_id is not None and meta.get("model_id") != model_id.hex():
        raise ValueError(
            f"{path}: fusion weights trained on codec {meta.get('model_id')}, "
            f"this codec is {model_id.hex()}"
        )
    block = FusionBlock(int(meta.get("channels", FUSION_CHANNELS)))
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
