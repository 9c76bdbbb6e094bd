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

__all__ = ["apply_fusion", "fusion_metadata", "fusion_path", "load_fusion", "save_fusion"]

FILE_FORMAT = "textboost-fusion/1"
STRIPE_ROWS = 256  # rows fused at a time, so a large image needs little memory
HALO = 8  # rows of context above and below a stripe: more than the block's 3-px reach


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
    """Fuse an HxWx3 uint8 decoded image with an HxW float guidance map in [0, 1].

    ``guidance`` None (no words) is the all-zero map: the block still runs, as a
    post-filter. Stripes of ``STRIPE_ROWS`` rows with a ``HALO`` give the same result as
    one pass over the whole image.
    """
    if decoded.ndim != 3 or decoded.shape[2] != 3 or decoded.dtype != np.uint8:
        raise ValueError(f"decoded image {decoded.shape} {decoded.dtype}, expected HxWx3 uint8")
    h, w = decoded.shape[:2]
    if guidance is None:
        guidance = np.zeros((h, w), np.float32)
    g = np.asarray(guidance, dtype=np.float32)
    if g.ndim == 3 and g.shape[2] in (1, 3):
        g = g.mean(axis=2) if g.shape[2] == 3 else g[:, :, 0]
    if g.shape != (h, w):
        raise ValueError(f"guidance of shape {g.shape}, expected ({h}, {w})")
    param = next(block.parameters())
    x = torch.tensor(decoded).permute(2, 0, 1)[None].to(param.device, torch.float32) / 255
    gt = torch.from_numpy(np.clip(g, 0.0, 1.0))[None, None].to(param.device)
    out = np.empty_like(decoded)
    with torch.inference_mode():
        for y0 in range(0, h, STRIPE_ROWS):
            y1 = min(h, y0 + STRIPE_ROWS)
            a, b = max(0, y0 - HALO), min(h, y1 + HALO)
            y = block(x[:, :, a:b], gt[:, :, a:b])[0, :, y0 - a : y1 - a]
            out[y0:y1] = (y.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return out
