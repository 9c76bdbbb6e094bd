"""One self-contained HTML file: summary, per-image table, plots and decoded images, all
inlined (base64), so the report can be mailed or opened offline."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from PIL import Image

from textboost.codec.image import load_image

__all__ = ["write_html"]

_THUMB_PX = 320
_MAX_THUMBS = 8

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}
table{border-collapse:collapse;font-size:12px;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f2f2f2} td.l,th.l{text-align:left}
.note{background:#fff6d6;border-left:4px solid #e0b000;padding:4px 8px;margin:4px 0}
figure{display:inline-block;margin:4px;text-align:center;font-size:12px}
img.plot{max-width:100%}
"""


def _b64_png(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _thumb(path: Path) -> str:
    im = Image.fromarray(load_image(path))
    im.thumbnail((_THUMB_PX, _THUMB_PX))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return base64.b64encode(buf.getvalue()).decode()


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return " ".join(_fmt(x) for x in v)
    return html.escape(str(v))


_TEXT_ONLY = ("decoded_image", "text_strings")  # long: the text table shows the words
_TEXT_COLS = (
    ("index", "#"), ("image", "image"), ("text_bytes", "text B"),
    ("time_to_text_s", "to text s"), ("time_to_first_image_s", "to 1st image s"),
    ("time_to_image_s", "to image s"), ("det_f1", "DET F1"), ("e2e_f1", "E2E F1"),
    ("e2e_f1_original", "E2E F1 original"), ("e2e_f1_words", "E2E F1 words carried"),
)


def _words(strings: list[str] | None) -> str:
    if strings is None:
        return "–"
    return " | ".join(html.escape(w) for w in strings) or "(none)"


def _text_table(rows: list[dict[str, Any]]) -> list[str]:
    """Per image: when the words, the first image and the whole image reached the ground
    (seconds after capture), the words, and the spotter's F1 on the decoded image."""
    if not any(r["text_bytes"] or r["det_f1"] is not None for r in rows):
        return []
    out = ["<h2>Text (run 0)</h2><p>Seconds after capture: the words (header and text "
           "section), the first decodable image (z), the complete image. F1 against the "
           "ground truth (ICDAR 2015): the spotter on the decoded image, on the original, "
           "and the words the text section carried.</p><table><tr>"]
    out += [f"<th>{html.escape(h)}</th>" for _, h in _TEXT_COLS]
    out.append("<th class='l'>words delivered</th></tr>")
    for r in rows:
        out.append("<tr>" + "".join(
            f"<td class='{'l' if c == 'image' else ''}'>{_fmt(r[c])}</td>" for c, _ in _TEXT_COLS
        ) + f"<td class='l'>{_words(r['text_strings'])}</td></tr>")
    out.append("</table>")
    return out


def write_html(
    report: dict[str, Any], plots: dict[str, Path], originals: dict[str, Path], path: Path
) -> None:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>link_sim: {e(report['scenario'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>link_sim report: {e(report['scenario'])}</h1>",
        f"<p>{e(report['description'])}</p>",
        f"<p>File <code>{e(report['file'])}</code>, seed {report['seed']}, "
        f"{report['runs']} run(s) of {report['duration_s']:g} s; codec: {e(report['codec'])}; "
        f"ARQ: {e(report['arq'])}; text path: {e(report['text_path'])}.</p>",
    ]
    parts += [f"<div class='note'>{e(n)}</div>" for n in report["notes"]]
    parts.append("<h2>Summary</h2><table><tr><th class='l'>figure</th><th>mean</th>"
                 "<th>± 95 % CI</th></tr>")
    for key, v in report["summary"].items():
        parts.append(f"<tr><td class='l'>{e(key)}</td><td>{_fmt(v['mean'])}</td>"
                     f"<td>{_fmt(v['ci95'])}</td></tr>")
    parts.append("</table><h2>Plots</h2>")
    for name, p in plots.items():
        parts.append(f"<figure><img class='plot' alt='{e(name)}' "
                     f"src='data:image/png;base64,{_b64_png(p)}'><figcaption>{e(name)}"
                     "</figcaption></figure>")
    rows = report["images"]
    cols = [c for c in rows[0] if c not in _TEXT_ONLY] if rows else []
    parts += _text_table(rows)
    parts.append("<h2>Images (run 0)</h2><table><tr>")
    parts += [f"<th>{e(c)}</th>" for c in cols]
    parts.append("</tr>")
    for row in rows:
        parts.append("<tr>" + "".join(
            f"<td class='{'l' if c in ('image', 'status', 'note') else ''}'>{_fmt(row[c])}</td>"
            for c in cols) + "</tr>")
    parts.append("</table><h2>What the ground decoded (run 0)</h2>")
    shown = 0
    for row in rows:
        if row["decoded_image"] is None or shown >= _MAX_THUMBS:
            continue
        shown += 1
        orig = originals[row["image"]]
        parts.append(
            f"<div><figure><img src='data:image/jpeg;base64,{_thumb(orig)}'>"
            f"<figcaption>{e(row['image'])} original</figcaption></figure>"
            f"<figure><img src='data:image/jpeg;base64,{_thumb(Path(row['decoded_image']))}'>"
            f"<figcaption>#{row['index']} decoded, {row['decoded_groups']}/{row['n_groups']} "
            f"groups, {_fmt(row['codec_bpp'])} bpp, {_fmt(row['psnr_db'])} dB"
            + (f"<br>words: {_words(row['text_strings'])}" if row["text_strings"] else "")
            + "</figcaption></figure></div>"
        )
    if not shown:
        parts.append("<p>No decoded images (synthetic payloads, or nothing arrived).</p>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts))
