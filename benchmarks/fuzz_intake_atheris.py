"""Coverage-guided fuzzing (atheris) of what the vehicle does with one file before the codec:
the entry check, the EXIF read and the pixel read, in process.

    pip install -e '.[fuzz]'     # atheris (wheels for CPython 3.10-3.12 on Linux x86-64)
    python benchmarks/fuzz_intake_atheris.py --runs 100000
    python benchmarks/fuzz_intake_atheris.py --runs 100000 -- -max_len=4096   # libFuzzer flags

The corpus starts from small valid JPEG/PNG/WebP/TIFF (with EXIF) and BMP files and the
files that once stopped ``uplink serve`` (tests/intake_inputs.py); the first input byte picks
the file's suffix, the rest is the file. Each input is written to a file and goes through
``DropFolder.inspect`` (a reason or None), then, if accepted, ``capture_for`` and
``load_image``, which may raise only ``ValueError`` naming the file (``MetaError`` is one).
Pillow's Python plugins are instrumented, so libFuzzer steers into their parsers; its C
decoders are not. Prints inputs run, wall and CPU time, the load average and what became of
the inputs. Anything else raised is a crash (libFuzzer writes the input to ``crash-*``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

try:
    import atheris
except ImportError:  # pragma: no cover - a benchmark-only dependency
    sys.exit("atheris is not installed: pip install -e '.[fuzz]' (see pyproject.toml)")

with atheris.instrument_imports(include=["PIL", "textboost.capture", "uplink.intake"]):
    from PIL import Image  # noqa: F401 - instrumented here, before anything imports it

    from textboost.capture import capture_for
    from textboost.codec.image import load_image
    from uplink.intake import DropFolder

from tests.intake_inputs import jpeg_with_gps_time, png_header, seeds, webp_with_bad_exif

SUFFIXES = (".jpg", ".png", ".webp", ".tif", ".bmp", ".tiff", ".jpeg")
OUTCOMES: Counter = Counter()


def corpus(folder: Path) -> None:
    files = [(s, d) for s, d in seeds().items()]
    files += [(".jpg", jpeg_with_gps_time()), (".png", png_header(20000, 10000)),
              (".webp", webp_with_bad_exif())]  # fmt: skip
    for i, (suffix, data) in enumerate(files):
        (folder / f"seed{i}").write_bytes(bytes([SUFFIXES.index(suffix)]) + data)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=100_000)
    args, extra = p.parse_known_args()
    extra = [a for a in extra if a != "--"]
    warnings.simplefilter("ignore")  # Pillow warns on each malformed tag it skips
    work = Path(tempfile.mkdtemp(prefix="fuzz-intake-", dir="/dev/shm"))
    seeds_dir = work / "corpus"
    seeds_dir.mkdir()
    corpus(seeds_dir)
    drop = DropFolder(work / "drop")

    t0, c0 = time.monotonic(), time.process_time()

    def one(data: bytes) -> None:
        take(drop, data)
        if sum(OUTCOMES.values()) == args.runs:  # libFuzzer exits the process after this
            report(t0, c0)

    libfuzzer = [sys.argv[0], f"-runs={args.runs}", "-timeout=10", "-rss_limit_mb=4096"]
    atheris.Setup([*libfuzzer, *extra, str(seeds_dir)], one)
    atheris.Fuzz()
    return 0


def take(drop: DropFolder, data: bytes) -> None:
    """One input as a dropped file: refused, read, or refused by the reader."""
    path = drop.folder / f"in{SUFFIXES[data[0] % len(SUFFIXES)] if data else '.jpg'}"
    path.write_bytes(data[1:])
    if (reason := drop.inspect(path)) is not None:
        OUTCOMES["refused: " + reason.split(" (")[0][:40]] += 1
        return
    try:
        capture_for(path)
        load_image(path)
        OUTCOMES["read"] += 1
    except ValueError as exc:
        assert str(exc).startswith(str(path)), exc
        OUTCOMES["ValueError: " + str(exc)[len(str(path)) + 2 :].split(" (")[0][:40]] += 1


def report(t0: float, c0: float) -> None:
    n = sum(OUTCOMES.values())
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    print(f"inputs run: {n:,} in {wall:.0f} s wall, {cpu:.0f} s CPU ({n / wall:.0f} per s); "
          f"load average {Path('/proc/loadavg').read_text().split()[0]}")
    for k, v in OUTCOMES.most_common(15):
        print(f"  {v:8d}  {k}")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
