"""Training CLI.

python -m textboost.train stage1 --config FILE.yaml [--steps N] [--minutes M]
python -m textboost.train export --checkpoint runs/x/checkpoint.pt --out model.safetensors
python -m textboost.train pack --out cache/train_data DIR [DIR ...]   # for a GPU machine
python -m textboost.train stage2 --config FILE.yaml [--minutes M] [--cache-only]
python -m textboost.train export-fusion --run runs/stage2_cpu --out model.fusion.safetensors

A stage-2 config with ``block: words`` trains the word fusion block
(:mod:`textboost.train.stage2_words`): the same command builds what is missing of its
cache for ``--cache-minutes`` (default: the config's ``cache_minutes``), then continues
training from the run's checkpoint for ``--minutes``.
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
    ef.add_argument(
        "--best", action="store_true", help="the run's best held-out block (best.pt), not its last"
    )
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


def _is_words_config(path: str) -> bool:
    from textboost.settings.load import ConfigError, read_yaml

    try:
        data = read_yaml(path, "stage-2 settings")
    except ConfigError:
        return False  # the stage-2 loader reports it
    return data.get("block") == "words"


def _stage2_words(args: argparse.Namespace) -> int:
    """Alternate cache building (``cache_minutes``) and training (``train_minutes``) until
    ``--minutes`` are spent: one process, so the cache grows while the block trains."""
    import json
    import time
    from pathlib import Path

    from textboost.train.font_pool import INSTALL_HINT
    from textboost.train.stage2_words import (
        WordStage2Config,
        WordTrainer,
        build_cache,
        evaluate_heldout,
        load_samples,
        split_files,
    )

    log = lambda m: print(m, flush=True)  # noqa: E731
    try:
        cfg = WordStage2Config.from_file(args.config)
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cache_minutes = cfg.cache_minutes if args.cache_minutes is None else args.cache_minutes
    try:
        warning = cfg.font_warning()
    except FileNotFoundError as e:  # not one usable face
        print(f"error: {e}; install them with {INSTALL_HINT}", file=sys.stderr)
        return 2
    if warning:
        print(warning, file=sys.stderr, flush=True)
    deadline = None if args.minutes is None else time.monotonic() + 60 * args.minutes
    trainer, files, heldout, complete = None, None, [], False
    while True:
        left = None if deadline is None else (deadline - time.monotonic()) / 60
        if (cache_minutes > 0 or args.cache_only) and not complete:
            chunk = cache_minutes if left is None else min(cache_minutes, max(left, 0) / 3)
            try:
                info = build_cache(cfg, chunk)
            except (ValueError, FileNotFoundError, TypeError) as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            complete = info["complete"]
            log(f"stage-2 cache {cfg.cache_dir}: {json.dumps(info)}")
        if args.cache_only:
            return 0
        if split_files(cfg) != files:
            files = split_files(cfg)
            try:
                samples = load_samples(files[0], cfg.match_score)
                if trainer is None:
                    trainer = WordTrainer(cfg, samples)
                else:
                    trainer.sampler.samples = samples
            except ValueError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            heldout = load_samples(files[1], cfg.match_score)
            trainer.rescore_best(heldout)
            log(
                f"training on {len(samples)} tiles of {len(files[0])} images, {len(heldout)} "
                f"held-out tiles of {len(files[1])} images, from step {trainer.step}"
            )
        left = None if deadline is None else (deadline - time.monotonic()) / 60
        chunk = cfg.train_minutes if left is None else min(cfg.train_minutes, max(left, 0))
        if complete or cache_minutes <= 0:
            chunk = left  # nothing more to cache: train to the end
        start = trainer.step
        trainer.run(args.steps, chunk, heldout, log=log)
        if trainer.step >= cfg.steps or (args.steps is not None and trainer.step > start) or (
            deadline is not None and time.monotonic() >= deadline
        ):
            break
    if not args.no_eval and heldout:
        res = evaluate_heldout(trainer.block, heldout)
        (Path(cfg.out_dir) / "heldout.json").write_text(json.dumps(res, indent=1))
        log(json.dumps(res))
    return 0


def _stage2(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    if _is_words_config(args.config):
        return _stage2_words(args)

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
        ckpt = run / ("best.pt" if args.best else "checkpoint.pt")
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        model = ModelFile.load(args.codec)
        held = run / "heldout.json"
        card = {"steps": state["step"], "train_images": state.get("train_images")}
        if held.exists():
            data = json.loads(held.read_text())
            card["heldout"] = data.get("summary", data)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    channels = state.get("channels", 16)
    if isinstance(channels, list):  # the word block (two widths)
        from textboost.fusion.word_block import WordFusionNet

        block = WordFusionNet(channels)
    else:
        block = FusionBlock(channels)
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
