"""Training CLI.

python -m textboost.train stage1 --config FILE.yaml [--steps N] [--minutes M]
python -m textboost.train export --checkpoint runs/x/checkpoint.pt --out model.safetensors
python -m textboost.train pack --out cache/train_data DIR [DIR ...]   # for a GPU machine
"""

from __future__ import annotations

import argparse
import sys

from textboost.train.stage1 import TrainConfig, Trainer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m textboost.train", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s1 = sub.add_parser("stage1", help="rate–distortion training of the backbone (resumes)")
    s1.add_argument("--config", required=True, help="YAML training config")
    s1.add_argument("--steps", type=int, help="run at most this many more steps")
    s1.add_argument("--minutes", type=float, help="stop (and checkpoint) after this wall time")
    ex = sub.add_parser("export", help="freeze a checkpoint into a shipped model file")
    ex.add_argument("--checkpoint", required=True)
    ex.add_argument("--out", required=True)
    ex.add_argument("--card", help="JSON file with model-card fields to embed")
    pk = sub.add_parser("pack", help="re-encode photo sets under a size cap to carry to a GPU")
    pk.add_argument("dirs", nargs="+", help="photo set folders (each becomes OUT/<name>)")
    pk.add_argument("--out", required=True, help="folder to write (e.g. cache/train_data)")
    pk.add_argument("--max-mib", type=float, default=40.0, help="size cap (default 40)")
    pk.add_argument("--max-side", type=int, default=512, help="short side cap (default 512)")
    args = p.parse_args(argv)
    if args.cmd == "export":
        return _export(args)
    if args.cmd == "pack":
        return _pack(args)
    try:
        cfg = TrainConfig.from_file(args.config)
        trainer = Trainer(cfg)
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    trainer.run(args.steps, args.minutes)
    return 0


def _pack(args: argparse.Namespace) -> int:
    from textboost.train.pack import pack_images

    try:
        info = pack_images(args.dirs, args.out, args.max_mib, args.max_side)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"wrote {info['images']} images, {info['mib']:.1f} MiB (JPEG q{info['quality']}, "
        f"short side <= {info['max_side']}) to {args.out}"
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from textboost.codec.model import CodecConfig, TextBoostNet
    from textboost.codec.weights import export_model

    try:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
        card = json.loads(Path(args.card).read_text()) if args.card else {}
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    net = TextBoostNet(CodecConfig.from_json(state["model_config"]))
    net.load_state_dict(state["model"])
    card.setdefault("steps", state["step"])
    mid = export_model(net, args.out, card)
    print(f"wrote {args.out} (model id {mid.hex()}, step {state['step']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
