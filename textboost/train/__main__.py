"""Training CLI.

python -m textboost.train stage1 --config FILE.yaml [--steps N] [--minutes M]
python -m textboost.train export --checkpoint runs/x/checkpoint.pt --out model.safetensors
python -m textboost.train pack --out cache/train_data DIR [DIR ...]   # for a GPU machine
python -m textboost.train stage2 --config FILE.yaml [--minutes M] [--cache-only]
python -m textboost.train export-fusion --run runs/stage2_cpu --out model.fusion.safetensors
"""

from __future__ import annotations

import argparse
import sys

from textboost.cli import add_version
from textboost.train.stage1 import TrainConfig, Trainer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m textboost.train", description=__doc__)
    add_version(p)
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
    s2 = sub.add_parser("stage2", help="fusion-block training on the frozen codec (resumes)")
    s2.add_argument("--config", required=True, help="YAML stage-2 config")
    s2.add_argument("--steps", type=int, help="run at most this many more steps")
    s2.add_argument("--minutes", type=float, help="stop training (and checkpoint) after this")
    s2.add_argument("--cache-minutes", type=float, help="time box of the cache build")
    s2.add_argument("--cache-only", action="store_true", help="build the cache and stop")
    s2.add_argument("--no-eval", action="store_true", help="skip the held-out measurement")
    ef = sub.add_parser("export-fusion", help="write a stage-2 run's fusion weights file")
    ef.add_argument("--run", required=True, help="stage-2 out_dir (checkpoint.pt, heldout.json)")
    ef.add_argument("--out", required=True, help="e.g. textboost/zoo/<model>.fusion.safetensors")
    ef.add_argument("--codec", help="the codec model file it was trained on (default: shipped)")
    args = p.parse_args(argv)
    if args.cmd == "export":
        return _export(args)
    if args.cmd == "pack":
        return _pack(args)
    if args.cmd == "stage2":
        return _stage2(args)
    if args.cmd == "export-fusion":
        return _export_fusion(args)
    try:
        cfg = TrainConfig.from_file(args.config)
        trainer = Trainer(cfg)
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    trainer.run(args.steps, args.minutes)
    return 0


def _stage2(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from textboost.train.stage2 import Stage2Config, Stage2Trainer, build_cache, run_eval

    try:
        cfg = Stage2Config.from_file(args.config)
        info = build_cache(cfg, args.cache_minutes)
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"stage-2 cache {cfg.cache_dir}: {json.dumps(info)}")
    if args.cache_only:
        return 0
    try:
        trainer = Stage2Trainer(cfg)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    trainer.run(args.steps, args.minutes)
    if not args.no_eval:
        res = run_eval(cfg, trainer.block)
        (Path(cfg.out_dir) / "heldout.json").write_text(json.dumps(res, indent=1))
        print(json.dumps(res["summary"], indent=1))
    return 0


def _export_fusion(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from textboost.codec.weights import ModelFile
    from textboost.fusion.model import FusionBlock
    from textboost.fusion.runtime import save_fusion

    run = Path(args.run)
    try:
        state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
        model = ModelFile.load(args.codec)
        held = run / "heldout.json"
        card = {"steps": state["step"], "train_images": state.get("train_images")}
        if held.exists():
            card["heldout"] = json.loads(held.read_text())["summary"]
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    block = FusionBlock(state.get("channels", 16))
    block.load_state_dict(state["model"])
    save_fusion(block, args.out, model.model_id, card)
    print(f"wrote {args.out} (codec {model.model_id.hex()}, step {state['step']})")
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
