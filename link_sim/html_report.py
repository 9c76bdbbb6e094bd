"""The HTML report a planner acts on: the verdict against the scenario's targets first, then
the scenario's parameters, the per-image table, what the ground decoded (thumbnails linking
the full-size PNGs written to ``decoded/`` beside the report, the words carried and crops of
each word in the original and the decoded image), the plots and every figure with its 95 %
confidence interval. Thumbnails, crops and plots are inlined, so the page alone opens
offline; the full-size images need the ``decoded/`` folder beside it."""

from __future__ import annotations

import base64
import shutil
from html import escape
from pathlib import Path
from typing import Any

from link_sim.parameters import duration
from textboost.web import (
    Check,
    ImageCard,
    Outline,
    image_card,
    page,
    params_table,
    table,
    text_crops,
    thumbnail,
    verdict_block,
)

__all__ = ["DECODED_DIR", "write_html"]

DECODED_DIR = "decoded"  # full-size decoded PNGs, beside report.html
_MAX_CARDS = 24  # a long mission's gallery shows the first ones; decoded/ holds them all
_THUMB_PX = 400  # 2x the 240 CSS px a card shows

CI_NOTE = (
    "± is the half-width of the 95 % confidence interval of the mean over the runs (Student "
    "t). The codec is deterministic and its encodes are cached, so the runs differ only by "
    "the channel (loss draws, hence retransmissions and delays): a figure the channel does "
    "not move, such as captures, codec bytes and bpp, or PSNR and text F1 of completely "
    "delivered photos, is the same in every run and its interval is exactly 0. That is the "
    "simulation being exact, not a missing computation."
)
ONE_RUN_NOTE = ("One run: no confidence interval (--runs N, or the scenario's 'runs', for "
                "Monte Carlo means).")

# per-image table: (column, header, decimals); text columns drop out when every cell is empty
_COLUMNS = (
    ("index", "#", 0), ("image", "image", 0), ("status", "status", 0),
    ("capture_s", "captured", 1), ("time_to_first_word_s", "to 1st word", 1),
    ("time_to_text_s", "to all words", 1),
    ("time_to_first_image_s", "to 1st image", 1), ("time_to_image_s", "to complete", 1),
    ("latency_s", "to decoded", 1), ("groups", "groups", 0), ("codec_bytes", "codec B", 0),
    ("codec_bpp", "codec bpp", 4), ("on_air_bpp", "on-air bpp", 4), ("psnr_db", "PSNR dB", 2),
    ("e2e_f1_words", "words F1", 2), ("e2e_f1", "E2E F1", 2), ("note", "note", 0),
)
_COUNTS = ("images_", "words_delivered", "_bytes", "frames_sent")


def _fmt(v: Any, nd: int) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.{nd}f}" if nd else f"{v:,.0f}"
    return str(v)


def _decimals(key: str) -> int:
    if "bpp" in key or key.endswith(("fraction", "efficiency", "loss_rate", "utilisation")):
        return 4
    if "f1" in key:
        return 3
    if key.endswith("bps"):
        return 0
    return 2


def _is_count(key: str) -> bool:
    return key.startswith(_COUNTS[0]) or key.endswith(_COUNTS[1:])


def _image_table(rows: list[dict[str, Any]]) -> str:
    cells = [{**r, "groups": f"{r['decoded_groups']}/{r['n_groups']}"} for r in rows]
    cols = [c for c in _COLUMNS if c[0] in ("index", "image", "status")
            or any(r.get(c[0]) is not None for r in cells)]
    for r in cells:  # times in the unit a planner reads each in: 46.6 s, 12.5 min, 3.3 h
        for key, _, _ in cols:
            if key.endswith("_s") and r.get(key) is not None:
                r[key] = duration(r[key])
    headers = [h for _, h, _ in cols]
    body = [[_fmt(r.get(key), nd) for key, _, nd in cols] for r in cells]
    keys = [c[0] for c in cols]
    return table(
        headers, body, table_id="images",
        names=[keys.index("image")], left=[keys.index("status")],
        wrap=[keys.index("note")] if "note" in keys else [],
    )


def _summary_table(report: dict[str, Any]) -> str:
    runs = report["runs"]
    per_run = report["per_run"]
    headers = ["figure", "mean"] + (["± 95 % CI", "runs: min–max"] if runs > 1 else [])
    body = []
    for key, v in report["summary"].items():
        nd = 0 if _is_count(key) else _decimals(key)
        row = [key, _fmt(v["mean"], nd)]
        if runs > 1:
            ci = v["ci95"]
            row.append("0 (same in every run)" if ci == 0 else _fmt(ci, nd))
            vals = [m[key] for m in per_run if m.get(key) is not None]
            lo, hi = (min(vals), max(vals)) if vals else (None, None)
            row.append(_fmt(lo, nd) if lo == hi else f"{_fmt(lo, nd)}–{_fmt(hi, nd)}")
        body.append(row)
    return table(headers, body, left=[0], table_id="summary", narrow=True)


def _copy_decoded(rows: list[dict[str, Any]], out_dir: Path) -> dict[int, str]:
    """Full-size decoded PNGs beside the report (one copy per distinct decode): index → href."""
    folder = out_dir / DECODED_DIR
    if folder.is_dir():
        for old in folder.glob("*.png"):  # this report's own files from an earlier run
            old.unlink()
    copied: dict[str, str] = {}
    hrefs = {}
    for r in rows:
        src = r["decoded_image"]
        if src is None or not Path(src).is_file():  # a cache emptied meanwhile: no link
            continue
        if src not in copied:
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{r['index']:03d}_{Path(r['image']).stem}.png"
            shutil.copyfile(src, folder / name)
            copied[src] = f"{DECODED_DIR}/{name}"
        hrefs[r["index"]] = copied[src]
    return hrefs


def _cards(rows: list[dict[str, Any]], originals: dict[str, Path], hrefs: dict[int, str],
           text_path: bool) -> str:
    thumbs: dict[str, str] = {}  # by file: captures cycling through a set repeat pictures
    crops_of: dict[tuple[str | None, str | None, str], list] = {}
    out = []
    for r in rows[:_MAX_CARDS]:
        orig = originals.get(r["image"])
        dec = r["decoded_image"] if r["index"] in hrefs else None
        for pic in (orig, dec):
            if pic is not None and str(pic) not in thumbs:
                thumbs[str(pic)] = thumbnail(pic, _THUMB_PX)
        meta = [("groups", f"{r['decoded_groups']}/{r['n_groups']}"),
                ("codec", f"{_fmt(r['codec_bytes'], 0)} B, {_fmt(r['codec_bpp'], 4)} bpp")]
        if r["psnr_db"] is not None:
            meta.append(("PSNR", f"{r['psnr_db']:.2f} dB"))
        if r["time_to_first_word_s"] is not None:
            meta.append(("first word at", duration(r["time_to_first_word_s"])))
        if r["time_to_text_s"] is not None:
            meta.append(("all words at", duration(r["time_to_text_s"])))
        if r["latency_s"] is not None:
            meta.append(("decoded at", f"{duration(r['latency_s'])} after capture"))
        words = r.get("text_words") or []
        key = (None if orig is None else str(orig), dec, repr(words))
        if text_path and words and key not in crops_of:
            crops_of[key] = text_crops(words, orig, dec)
        crops = crops_of.get(key, [])
        out.append(image_card(ImageCard(
            title=f"#{r['index']} {r['image']}",
            thumb_src=None if dec is None else thumbs[dec],
            href=hrefs.get(r["index"]),
            original_src=None if orig is None else thumbs[str(orig)],
            status=r["status"] + (f": {r['note']}" if r["note"] else ""),
            meta=meta,
            strings=r["text_strings"] if text_path else None,
            crops=crops,
            card_id=f"image-{r['index']}",
            text_path=text_path,
            outlines=_outlines(words, dec) if text_path and words and dec else (),
        )))
    more = len(rows) - _MAX_CARDS
    tail = (f"<p class='tb-muted'>{more} more photos: every decoded image is in "
            f"<code>{DECODED_DIR}/</code>.</p>" if more > 0 else "")
    return f"<div class='tb-cards' id='gallery'>{''.join(out)}</div>{tail}"


def _outlines(words: list[dict[str, Any]], decoded: str) -> list[Outline]:
    """The carried words' regions over the decoded picture (quads in the original's pixels,
    the decoded picture at the original's size)."""
    from PIL import Image

    try:
        with Image.open(decoded) as im:
            w, h = im.size
    except OSError:
        return []
    return [
        Outline([(x / w, y / h) for x, y in wd["quad"]], str(wd["text"]), wd.get("score"))
        for wd in words
        if wd.get("quad")
    ]


def write_html(
    report: dict[str, Any], plots: dict[str, Path], originals: dict[str, Path], path: Path
) -> None:
    e = escape
    rows = report["images"]
    runs = report["runs"]
    text_path = report["text_path"] == "on"
    verdict = report["verdict"]
    checks = [Check(c["label"], c["value"], c["target"], c["ok"], c["detail"])
              for c in verdict["checks"]]
    subject = "in every run" if runs > 1 and verdict["ok"] else ""
    parts = [
        f"<h1>link_sim report: {e(report['scenario'])}</h1>",
        f"<p>{e(report['description'])}</p>",
        verdict_block(checks, subject=subject),
        f"<p class='tb-muted'>File <code>{e(report['file'])}</code>, seed {report['seed']}, "
        f"{runs} run(s) of {report['duration_s']:g} s; codec: {e(report['codec'])}; "
        f"ARQ: {e(report['arq'])}; text path: {e(report['text_path'])}.</p>",
        "<h2>Scenario</h2>",
        params_table([(g, [tuple(r) for r in rs]) for g, rs in report["parameters"]]),
    ]
    parts += [f"<div class='tb-note'>{e(n)}</div>" for n in report["notes"]]
    parts += [
        "<h2>Photos (run 0)</h2>",
        "<p class='tb-muted'>Captured: mission time. Then the time after capture until "
        "the words (the text section read), the first image (z: a coarse picture), the "
        "complete image (every group) and the decoded image. Every column of every image is "
        "in <code>images.csv</code> and <code>report.json</code>.</p>",
        _image_table(rows) if rows else "<p>No photos captured.</p>",
        "<h2>What the ground decoded (run 0)</h2>",
    ]
    hrefs = _copy_decoded(rows, path.parent)
    if any(r["decoded_image"] for r in rows) or (text_path and any(
            r["text_strings"] for r in rows)):
        parts.append(_cards(rows, originals, hrefs, text_path))
    else:
        parts.append("<p>No decoded images (synthetic payloads, or nothing arrived).</p>")
    parts.append("<h2>Plots</h2>")
    for name, p in plots.items():
        data = base64.b64encode(p.read_bytes()).decode()
        parts.append(f"<figure class='tb-plot'><img alt='{e(name)}' "
                     f"src='data:image/png;base64,{data}'><figcaption>{e(name)}"
                     "</figcaption></figure>")
    parts += [
        "<h2>All figures</h2>",
        f"<p class='tb-muted' id='ci-note'>{e(CI_NOTE if runs > 1 else ONE_RUN_NOTE)}</p>",
        _summary_table(report),
    ]
    path.write_text(page(f"link_sim: {report['scenario']}", "\n".join(parts)))
