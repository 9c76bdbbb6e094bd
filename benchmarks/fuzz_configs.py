"""Mutated config files through the one YAML loader and the three schemas (field, scenario,
training): every input must load or raise ``ConfigError`` with a one-line message naming
the file; anything else (a traceback, ``RecursionError``, a message of several lines) is a
finding, printed with its input.

    python benchmarks/fuzz_configs.py --runs 100000 --seed 1

Each input starts from a shipped file (``configs/*.yaml``, ``scenarios/*.yaml``) and applies
one to four mutations the seed chooses: a byte flipped, a line repeated (duplicate keys), a
line dropped, a value swapped for a hostile one (``yes``, ``.inf``, ``-1``, ``1e309``,
``../../etc/passwd``, a string of 10^4 characters, a nest of 10^4 brackets), or the whole
document wrapped in brackets. Prints inputs run, outcomes, findings and the time per input.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from link_sim.scenario import load_scenario  # noqa: E402
from textboost.field.config import load_field_config  # noqa: E402
from textboost.settings.load import ConfigError  # noqa: E402
from textboost.train.stage1 import TrainConfig  # noqa: E402
from textboost.train.stage2 import Stage2Config  # noqa: E402
from textboost.train.stage2_words import WordStage2Config  # noqa: E402

HOSTILE = ["yes", "no", ".inf", "-.inf", ".nan", "-1", "0", "1e309", "~", "[]", "{}",
           "'../../../../etc/passwd'", "['../../etc/passwd']", "x" * 10_000,
           "[" * 10_000 + "]" * 10_000, "&a [*a]", "!!python/object:os.system ls"]  # fmt: skip


def _loader(path: Path):
    if path.parent.name == "scenarios":
        return load_scenario
    if path.name.startswith("field"):
        return load_field_config
    if path.name.startswith("stage2"):
        words = "block: words" in path.read_text()
        return WordStage2Config.from_file if words else Stage2Config.from_file
    return TrainConfig.from_file


def mutate(text: str, rng: random.Random) -> str:
    lines = text.splitlines(keepends=True) or ["\n"]
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(5)
        i = rng.randrange(len(lines))
        if kind == 0 and lines[i]:
            j = rng.randrange(len(lines[i]))
            lines[i] = lines[i][:j] + chr(rng.randrange(32, 127)) + lines[i][j + 1:]
        elif kind == 1:
            lines.insert(i, lines[i])
        elif kind == 2 and len(lines) > 1:
            del lines[i]
        elif kind == 3 and ":" in lines[i]:
            key = lines[i].split(":", 1)[0]
            lines[i] = f"{key}: {rng.choice(HOSTILE)}\n"
        elif kind == 4:
            depth = rng.choice([10, 100, 10_000])
            lines = ["[" * depth, *lines, "]" * depth]
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    shipped = [*sorted((ROOT / "configs").glob("*.yaml")),
               *sorted((ROOT / "scenarios").glob("*.yaml"))]  # fmt: skip
    outcomes = {"loaded": 0, "ConfigError": 0}
    findings = []
    t0 = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.runs):
            src = rng.choice(shipped)
            folder = Path(tmp) / src.parent.name
            folder.mkdir(exist_ok=True)
            for other in src.parent.glob("*.key"):  # the field file's key beside it
                (folder / other.name).write_bytes(other.read_bytes())
            path = folder / src.name
            path.write_text(mutate(src.read_text(), rng))
            try:
                _loader(src)(path)
                outcomes["loaded"] += 1
            except ConfigError as exc:
                outcomes["ConfigError"] += 1
                if "\n" in str(exc) or not str(exc).startswith(str(path)):
                    findings.append((n, src.name, f"message: {exc!r}"))
            except Exception as exc:  # a finding, reported below
                findings.append((n, src.name, f"{type(exc).__name__}: {exc}"))
    cpu_s = time.process_time() - t0
    print(f"{args.runs} mutated configs (seed {args.seed}): {outcomes['loaded']} loaded, "
          f"{outcomes['ConfigError']} one-line ConfigError, {len(findings)} findings; "
          f"{1e3 * cpu_s / args.runs:.2f} ms CPU per input")  # fmt: skip
    for n, name, what in findings[:20]:
        print(f"  input {n} ({name}): {what[:300]}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
