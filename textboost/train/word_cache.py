"""The word-crop cache of stage 2: the frozen codec's output around carried words, built once.

The codec does not change during stage 2, so every training image is coded once per
product rate (``rates``, bpp of the whole file with its text section: the shipped
``encode_to_budget``, words spotted on the original as the sender does), decoded without
fusion, and only the tiles the receiver would fuse are kept
(:func:`textboost.fusion.regions.word_tiles` of the words the stream carries): the
original's pixels and each rate's decoded pixels there, the carried words, the
ground-truth words and the stream itself (so a later renderer can re-read its payload).
One ``<name>.npz`` per image; an image whose streams carry no words is recorded with no
tiles. Existing files are skipped, so the build resumes, and it stops at a deadline.

Images come round-robin from every source (the synthetic generator with many fonts, then
each annotated real set), so a build cut short still holds every kind. Evaluation sets
(Kodak, ICDAR 2015, OpenALPR EU/BR) are refused by name.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from textboost.fusion.regions import word_tiles
from textboost.text.words import Word

__all__ = [
    "EVAL_SETS",
    "CacheItem",
    "CachedImage",
    "build_word_cache",
    "cache_items",
    "is_heldout",
    "load_cached",
    "scale_to",
    "words_arrays",
]

CACHE_HALO = 32  # context kept around the regions: more than the receiver's HALO, for crops
EVAL_SETS = ("kodak", "icdar2015", "icdar_2015", "openalpr_eu", "openalpr_br")


def is_heldout(name: str, mod: int) -> bool:
    """One image name in ``mod`` (by crc32) is held out of training, on every machine."""
    return mod > 0 and zlib.crc32(name.encode()) % mod == 0


def check_training_dir(d: str | Path) -> Path:
    p = Path(d)
    if any(s in p.as_posix().lower() for s in EVAL_SETS):
        raise ValueError(f"{d}: an evaluation set, never train on it")
    if not p.is_dir():
        raise FileNotFoundError(f"training folder {d} does not exist")
    return p


@dataclass(frozen=True)
class CacheItem:
    """One training image to cache: a synthetic index or an annotated real file."""

    name: str  # unique, used for the file name and the held-out split
    kind: str  # "synth" or the real set's folder name
    synth_index: int | None = None
    path: Path | None = None


def cache_items(
    real_dirs: Sequence[str | Path],
    synth_images: int,
    synth_seed: int,
    max_per_set: int | None = None,
) -> list[CacheItem]:
    """Every source's items, interleaved round-robin (synthetic first)."""
    from textboost.scenetext.gt import IMAGE_SUFFIXES, read_gt

    synth = [CacheItem(f"synth{synth_seed}_{k:05d}", "synth", synth_index=k)
             for k in range(synth_images)]  # fmt: skip
    queues: list[list[CacheItem]] = [synth]
    for d in real_dirs:
        d = check_training_dir(d)
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        items = []
        for p in files:
            if read_gt(p) is None:
                continue
            tag = hashlib.sha1(p.name.encode()).hexdigest()[:10]  # CCPD names are long
            items.append(CacheItem(f"{d.name}_{tag}", d.name, path=p))
        queues.append(items[:max_per_set] if max_per_set else items)
    out: list[CacheItem] = []
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def scale_to(img: np.ndarray, words: list[Word], max_side: int) -> tuple[np.ndarray, list[Word]]:
    """``img`` shrunk to ``max_side`` pixels at most on its longer side, ``words`` with it."""
    from textboost.codec.image import resize

    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img, words
    s = max_side / max(h, w)
    nw, nh = round(w * s), round(h * s)
    sx, sy = nw / w, nh / h
    return resize(img, nw, nh), [Word(wd.quad * [sx, sy], wd.text, wd.score) for wd in words]


def _load_real(path: Path) -> tuple[np.ndarray, list[Word], list[bool]]:
    from textboost.codec.image import load_image
    from textboost.scenetext.gt import read_gt

    gt = read_gt(path)
    assert gt is not None
    return (
        load_image(path),
        [Word(g.quad, g.text, 1.0) for g in gt.words],
        [g.care for g in gt.words],
    )


class _SpotOnce:
    """The sender's spotter, run once per image however many rates are coded."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.key: bytes | None = None
        self.words: list[Word] = []

    def spot(self, img: np.ndarray) -> list[Word]:
        key = hashlib.sha1(np.ascontiguousarray(img).data).digest()
        if key != self.key:
            self.key, self.words = key, self.inner.spot(img)
        return self.words


def words_arrays(prefix: str, words: Sequence[Word]) -> dict[str, np.ndarray]:
    return {
        f"{prefix}_quads": np.array([w.quad for w in words], np.float32).reshape(-1, 4, 2),
        f"{prefix}_text": np.array([w.text for w in words], dtype=str),
        f"{prefix}_score": np.array([w.score for w in words], np.float32),
    }


def words_from(z, prefix: str) -> list[Word]:
    return [
        Word(q.astype(np.float64), str(t), float(s))
        for q, t, s in zip(
            z[f"{prefix}_quads"], z[f"{prefix}_text"], z[f"{prefix}_score"], strict=True
        )
    ]


def build_word_cache(
    cache_dir: str | Path,
    items: Sequence[CacheItem],
    rates: Sequence[float],
    max_side: int,
    photo_dirs: Sequence[str | Path] = (),
    fonts: Sequence[Path] = (),
    synth_seed: int = 0,
    codec_path: str | None = None,
    minutes: float | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Code, decode and crop every item not yet cached, until done or ``minutes`` pass."""
    from textboost.codec.api import BudgetError
    from textboost.codec.image import psnr_db
    from textboost.pipeline.api import Pipeline
    from textboost.text.spotter import default_spotter
    from textboost.train.synth_text import SceneTextGenerator, SynthConfig

    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    spot = _SpotOnce(default_spotter())
    codec = Pipeline.load(codec_path, fusion=False, spotter=spot)
    gen = None
    deadline = None if minutes is None else time.monotonic() + 60 * minutes
    made = skipped = 0
    for n, it in enumerate(items):
        path = cache / f"{it.name}.npz"
        if path.exists():
            skipped += 1
            continue
        if deadline is not None and time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        if it.kind == "synth":
            if gen is None:
                gen = SceneTextGenerator(photo_dirs, SynthConfig(max_side=max_side), fonts=fonts)
            s = gen.generate(synth_seed, it.synth_index)
            img, gt, care = s.image, s.words, [True] * len(s.words)
            source = f"synth:{s.photo}:{s.fonts}"
        else:
            img, gt, care = _load_real(it.path)
            img, gt = scale_to(img, gt, max_side)
            source = f"{it.kind}:{it.path.name}"
        h, w = img.shape[:2]
        streams, decoded, bpps, psnrs = [], [], [], []
        sent: list[Word] = []
        # the sender carries nothing: the receiver fuses nothing, so skip the encodes
        carried = bool(codec.spot(img))
        for b in rates if carried else ():
            try:
                data = codec.encode_to_budget(img, bpp=float(b))
            except BudgetError:
                streams.append(b"")
                decoded.append(None)
                bpps.append(np.nan)
                psnrs.append(np.nan)
                continue
            dec = codec.decode(data, fusion=False)
            sent = codec.words(data) or sent
            streams.append(data)
            decoded.append(dec)
            bpps.append(len(data) * 8 / (w * h))
            psnrs.append(psnr_db(dec, img))
        tiles = word_tiles(sent, w, h, CACHE_HALO)
        arrays: dict[str, np.ndarray] = {
            "source": np.array(source),
            "size": np.array([w, h], np.int32),
            "rates": np.array(rates, np.float32),
            "bpp": np.array(bpps, np.float32),
            "psnr": np.array(psnrs, np.float32),
            "tiles": np.array([[t.x0, t.y0, t.x1, t.y1] for t in tiles], np.int32).reshape(-1, 4),
            "gt_care": np.array(care, bool),
            **words_arrays("gt", gt),
            **words_arrays("sent", sent),
        }
        for r, data in enumerate(streams):  # no streams: nothing was carried
            arrays[f"tbx_{r}"] = np.frombuffer(data, np.uint8)
        for k, t in enumerate(tiles):
            arrays[f"orig_{k}"] = img[t.y0 : t.y1, t.x0 : t.x1]
            for r, dec in enumerate(decoded):
                if dec is not None:
                    arrays[f"dec_{r}_{k}"] = dec[t.y0 : t.y1, t.x0 : t.x1]
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)
        made += 1
        log(
            f"[{n + 1}/{len(items)}] {it.name} {source[:60]} {w}x{h} words sent {len(sent)} "
            f"gt {len(gt)} tiles {len(tiles)} bpp {np.round(bpps, 4).tolist()} "
            f"{time.perf_counter() - t0:.1f}s"
        )
    files = len(list(cache.glob("*.npz"))) - len(list(cache.glob("*.tmp.npz")))
    return {"files": files, "made": made, "skipped": skipped, "planned": len(items),
            "complete": files >= len(items)}  # fmt: skip


@dataclass
class CachedImage:
    """A cache file read back: tiles of the original and of each rate's decoded image."""

    name: str
    source: str
    size: tuple[int, int]
    rates: np.ndarray
    bpp: np.ndarray
    tiles: np.ndarray  # (K, 4) x0, y0, x1, y1
    originals: list[np.ndarray]
    decoded: list[list[np.ndarray | None]]  # [rate][tile]
    sent: list[Word]
    gt: list[Word]
    gt_care: np.ndarray
    streams: list[bytes]


def load_cached(path: Path) -> CachedImage:
    with np.load(path) as z:
        tiles = z["tiles"]
        n_rates = len(z["rates"])
        return CachedImage(
            name=path.stem,
            source=str(z["source"]),
            size=tuple(int(v) for v in z["size"]),
            rates=z["rates"],
            bpp=z["bpp"],
            tiles=tiles,
            originals=[z[f"orig_{k}"] for k in range(len(tiles))],
            decoded=[[z.get(f"dec_{r}_{k}") for k in range(len(tiles))] for r in range(n_rates)],
            sent=words_from(z, "sent"),
            gt=words_from(z, "gt"),
            gt_care=z["gt_care"],
            streams=[z[f"tbx_{r}"].tobytes() if f"tbx_{r}" in z else b"" for r in range(n_rates)],
        )
