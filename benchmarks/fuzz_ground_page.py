"""The ground page's input surfaces under a longer fuzz than the suite's property tests: tile
packages, search queries and seen-mark requests, against a live page over real HTTP.

- tiles: a tiny MBTiles package (tests/tile_package.py) with 0-6 random edits (overwrite
  bytes, three of four in the first 4 KiB where the SQLite header and schema live; cut the
  file), opened with :func:`downlink.tiles.open_tiles` and read at a few addresses; counted:
  opened, refused with one line naming the file (TileError), anything else (a crash: the
  target is none), and the page's answer with that package as its basemap (every tenth);
- search: random queries (unicode, punctuation, up to 400 characters, percent-encoded)
  to ``/search`` over ``--cards`` photos; counted: answers by status, answers that are not a
  JSON list of known cards, the slowest answer;
- seen: random forms (random bytes, random keys and values, known cards) posted to
  ``/seen``; counted: answers by status, marks that changed without a valid request or
  did not change with one, and the page still answering at the end.

    python benchmarks/fuzz_ground_page.py [--seconds 60] [--seed 0] [--cards 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from downlink.state import DownlinkState, SeenMarks
from downlink.tiles import TileError, open_tiles
from downlink.web import GroundView, LiveServer
from tests.tile_package import area_package, xyz
from textboost.field.eventlog import EventLog

HERE = (46.5197, 6.6323)
ALPHABET = "abcXYZ0123456789 -_.,;:/\\%&?=+#'\"<>éßÄ北京😀\u200b\x00\t\n"


def _http(url: str, body: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def _mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(0, 6)):
        at = rng.randrange(4096) if rng.random() < 0.75 else rng.randrange(len(out))
        at = min(at, len(out) - 1)
        n = rng.randint(1, 8)
        out[at : at + n] = bytes(rng.randrange(256) for _ in range(n))
    if rng.random() < 0.2:
        out = out[: rng.randrange(len(out) + 1)]
    return bytes(out)


def _photos(folder: Path, n: int, rng: random.Random) -> tuple[Path, Path, list[str]]:
    out, log_path = folder / "received", folder / "down.jsonl"
    (out / "partial").mkdir(parents=True)
    log = EventLog(log_path, "downlink")
    keys = []
    for b in range(n):
        words = ["".join(rng.choice(ALPHABET[:40]) for _ in range(rng.randint(1, 10)))
                 for _ in range(rng.randint(0, 3))]  # fmt: skip
        doc = {"capture": {"lat": HERE[0] + rng.uniform(-0.01, 0.01),
                           "lon": HERE[1] + rng.uniform(-0.01, 0.01), "name": f"IMG_{b:04d}.jpg"},
               "words": [{"text": w} for w in words]}  # fmt: skip
        (out / "partial" / f"e1_b{b}.json").write_text(json.dumps(doc))
        log.write("text", epoch=1, bundle=b, bytes=60, words=words)
        keys.append(f"e1_b{b}")
    log.close()
    return out, log_path, keys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="per surface")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cards", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    res: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out, log_path, keys = _photos(folder, args.cards, rng)
        DownlinkState(folder / "down.db").close()
        marks = SeenMarks(folder / "down.db")
        view = GroundView(out, log_path, marks=marks)
        server = LiveServer(view, ("127.0.0.1", 0)).start()
        view.refresh()
        # --- tile packages
        good = area_package(folder / "good.mbtiles", *HERE, range(12, 15), radius=1).read_bytes()
        z, (x, y) = 14, xyz(*HERE, 14)
        tiles: Counter[str] = Counter()
        pages: Counter[str] = Counter()
        end = time.monotonic() + args.seconds
        i = 0
        while time.monotonic() < end:
            path = folder / f"m{i % 4}.mbtiles"
            path.write_bytes(_mutate(good, rng))
            try:
                t = open_tiles(path)
            except TileError as exc:
                one = str(exc).startswith(str(path)) and "\n" not in str(exc)
                tiles["refused, one line naming the file" if one else "refused, bad message"] += 1
            except Exception as exc:  # the target: none
                tiles[f"crash {type(exc).__name__}"] += 1
            else:
                try:
                    for a in ((z, x, y), (z, x + 1, y), (13, x // 2, y // 2), (0, 0, 0)):
                        t.get(*a)
                    tiles["opened"] += 1
                except Exception as exc:
                    tiles[f"crash in get {type(exc).__name__}"] += 1
                finally:
                    t.close()
            if i % 10 == 0:  # the page with it as its basemap
                page = LiveServer(view, ("127.0.0.1", 0), tiles=path).start()
                pages[f"page {_http(page.url)[0]}"] += 1
                pages[f"tile {_http(f'{page.url}tiles/{z}/{x}/{y}.png')[0]}"] += 1
                page.close()
            i += 1
        res["tiles"] = {"packages": i, **tiles, "answers with it as basemap": dict(pages)}
        # --- search queries
        answers: Counter[int] = Counter()
        bad, slowest, n = 0, 0.0, 0
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            q = "".join(rng.choice(ALPHABET) for _ in range(rng.choice([0, 1, 3, 8, 40, 400])))
            t0 = time.perf_counter()
            status, body = _http(f"{server.url}search?q={urllib.parse.quote(q, safe='')}")
            slowest = max(slowest, time.perf_counter() - t0)
            answers[status] += 1
            try:
                ok = status == 200 and set(json.loads(body)) <= set(keys)
            except ValueError:
                ok = False
            bad += not ok
            n += 1
        res["search"] = {"queries": n, "answers by status": dict(answers),
                         "not a list of known cards": bad,
                         "slowest answer ms": round(1000 * slowest, 1)}  # fmt: skip
        # --- seen marks
        answers = Counter()
        wrong, n = 0, 0
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            roll = rng.random()
            if roll < 0.3:
                body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
            else:
                card = rng.choice(keys) if roll < 0.8 else "".join(
                    rng.choice(ALPHABET) for _ in range(rng.randint(0, 20)))  # fmt: skip
                seen = rng.choice(["0", "1", "2", "", "yes", "1\x00"])
                body = urllib.parse.urlencode({"card": card, "seen": seen}).encode()
            before = {k: view.images[k].seen for k in keys}
            status = _http(f"{server.url}seen", body)[0]
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            card, seen = form.get("card", [""])[0], form.get("seen", [""])[0]
            after = {k: view.images[k].seen for k in keys}
            valid = card in keys and seen in ("0", "1")
            want = {**before, card: seen == "1"} if valid else before
            wrong += after != want or (status == 200) != valid
            answers[status] += 1
            n += 1
        stored = marks.all() == {k for k in keys if view.images[k].seen}
        res["seen"] = {"requests": n, "answers by status": dict(answers),
                       "marks wrong": wrong, "stored marks equal the page's": stored,
                       "page answers at the end": _http(server.url)[0]}  # fmt: skip
        server.close()
        marks.close()
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        for surface, figs in res.items():
            print(f"{surface}: " + "; ".join(f"{k} {v}" for k, v in figs.items()))
    crashes = sum(v for k, v in res["tiles"].items() if k.startswith("crash"))
    failed = crashes or res["search"]["not a list of known cards"] or res["seen"]["marks wrong"]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
