"""python -m textboost.train stage1 --config FILE.yaml [--steps N]"""

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
    args = p.parse_args(argv)
    try:
        cfg = TrainConfig.from_file(args.config)
        trainer = Trainer(cfg)
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    trainer.run(args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
