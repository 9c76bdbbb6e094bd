"""HTML components for operator pages: a verdict with pass/fail marks, a parameters grid,
tables that fit the page, and image cards (thumbnail linking the full-size image, the words
the text section carried, crops of each word in the original and the decoded image).

Every page is self-contained: the CSS is inline (:data:`CSS`), images are data URIs or
relative links, nothing is fetched from a network, so a report opens offline and the
ground station's page works on a link with no Internet. Every text is escaped here; callers
pass plain strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

__all__ = [
    "CSS",
    "Check",
    "ImageCard",
    "Outline",
    "TextCrop",
    "image_card",
    "mark",
    "page",
    "params_table",
    "table",
    "verdict_block",
]

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:0 auto;padding:1em 1.5em;color:#222;
 max-width:1240px;line-height:1.35}
h1{font-size:1.6em;margin:.2em 0 .3em}
h2{font-size:1.25em;margin:1.4em 0 .5em;border-bottom:1px solid #ddd;padding-bottom:.15em}
p,li{max-width:80em}
code{overflow-wrap:anywhere}
.tb-note{background:#fff6d6;border-left:4px solid #e0b000;padding:4px 8px;margin:4px 0}
.tb-muted{color:#666;font-size:.9em}
.tb-verdict{border:2px solid #888;border-radius:8px;padding:.7em 1em;margin:.8em 0;
 background:#f5f5f5}
.tb-verdict.pass{border-color:#1a7f37;background:#eef9f0}
.tb-verdict.fail{border-color:#c62828;background:#fdeeee}
.tb-overall{font-size:1.25em;font-weight:700}
.tb-checks{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:.6em;
 margin-top:.6em}
.tb-check{background:#fff;border:1px solid #d6d6d6;border-radius:6px;padding:.45em .7em;
 min-width:0}
.tb-check .tb-label{font-size:.85em;color:#555}
.tb-check .tb-value{font-size:1.15em;font-weight:600;overflow-wrap:anywhere}
.tb-check .tb-target{font-size:.85em}
.tb-nowrap{white-space:nowrap}
.tb-check .tb-detail{font-size:.8em;color:#555;margin-top:.2em}
.tb-mark{font-weight:700;white-space:nowrap}
.tb-mark.pass{color:#1a7f37}.tb-mark.fail{color:#c62828}.tb-mark.none{color:#777}
.tb-params{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:.6em;
 align-items:start}
.tb-params table{width:100%}
.tb-params td{text-align:left;overflow-wrap:anywhere}
.tb-params td:first-child{width:38%;color:#444}
table{border-collapse:collapse;font-size:13px}
.tb-table{width:100%}
.tb-table.tb-narrow{width:auto;min-width:min(100%,640px)}
td,th{border:1px solid #d0d0d0;padding:3px 6px;text-align:right;vertical-align:top}
th{background:#f2f2f2;font-weight:600}
.l{text-align:left}
td.tb-name{max-width:11em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
td.tb-wrap{overflow-wrap:anywhere;text-align:left;min-width:6em}
.tb-scroll{overflow-x:auto;max-width:100%}
.tb-cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,560px),1fr));
 gap:.8em}
.tb-card{border:1px solid #ccc;border-radius:6px;padding:.5em;display:flex;gap:.7em;
 flex-wrap:wrap;min-width:0;background:#fff}
.tb-pics{flex:0 0 240px;max-width:100%;font-size:12px;color:#555}
.tb-pics img{width:100%;display:block;border:1px solid #bbb}
.tb-pics figure{margin:0 0 .4em}
.tb-info{flex:1 1 260px;min-width:0;font-size:13px}
.tb-card h3{font-size:1em;margin:0 0 .3em;overflow-wrap:anywhere}
.tb-meta{margin:.2em 0;color:#444}
.tb-strings{overflow-wrap:anywhere;margin:.3em 0}
.tb-crops{width:100%;margin-top:.3em;table-layout:fixed}
.tb-crops th,.tb-crops td{text-align:left;overflow-wrap:anywhere}
.tb-crops img{height:28px;max-width:100%;object-fit:contain;object-position:left;
 display:block}
.tb-over{position:relative}
.tb-over svg{position:absolute;left:0;top:0;width:100%;height:100%;pointer-events:none}
.tb-over polygon{fill:none;stroke:#ffb000;stroke-width:2;pointer-events:stroke}
.tb-over polygon.tb-low{stroke-dasharray:4 3}
.tb-pics:has(.tb-ol:not(:checked)) .tb-outline{display:none}
.tb-toggle{display:block;font-size:12px;margin:.1em 0 .3em}
.tb-warn{font-size:12px}
.tb-details{margin-top:.3em;font-size:12px;color:#444}
.tb-details summary{cursor:pointer;color:#555}
.tb-details td{text-align:left;border:none;padding:1px 8px 1px 0}
.tb-card.tb-seen{background:#f3f6f3;border-color:#9c9}
.tb-card.tb-seen .tb-pics img{opacity:.75}
.tb-seen-btn{float:right;font-size:12px;margin-left:.5em}
figure.tb-plot{display:inline-block;margin:4px;max-width:100%;text-align:center;
 font-size:12px}
figure.tb-plot img{max-width:100%}
"""


def page(title: str, body: str, extra_css: str = "") -> str:
    """A complete HTML document; ``body`` is HTML already built from these components."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{CSS}{extra_css}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


# --- verdict ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    """One figure of a verdict and the target it is judged against (``ok`` None: no target
    set, shown without a mark so nothing looks judged that was not)."""

    label: str
    value: str
    target: str | None = None
    ok: bool | None = None
    detail: str = ""


def mark(ok: bool | None) -> str:
    """A pass/fail mark in words as well as colour (readable in print and by colour-blind)."""
    if ok is None:
        return "<span class='tb-mark none'>– no target</span>"
    return ("<span class='tb-mark pass'>✔ PASS</span>" if ok
            else "<span class='tb-mark fail'>✘ FAIL</span>")


def _parts(value: str) -> str:
    """Break a value like "p50 28.8 s · p95 46.5 s" only at its dots."""
    parts = value.split(" · ")
    if len(parts) == 1:
        return escape(value)
    return " · ".join(f"<span class='tb-nowrap'>{escape(v)}</span>" for v in parts)


def verdict_block(checks: Sequence[Check], *, subject: str = "") -> str:
    """The block a planner reads first: overall PASS only when every judged check passes."""
    judged = [c for c in checks if c.ok is not None]
    failed = [c for c in judged if not c.ok]
    if not judged:
        cls, overall = "none", "No targets set: figures shown without a verdict"
    elif failed:
        cls = "fail"
        overall = (f"✘ FAIL: {len(failed)} of {len(judged)} targets missed "
                   f"({', '.join(c.label for c in failed)})")
    else:
        cls, overall = "pass", f"✔ PASS: all {len(judged)} targets met"
    if subject:
        overall += f" {subject}"
    cards = []
    for c in checks:
        target = f"target {escape(c.target)} " if c.target else ""
        cards.append(
            f"<div class='tb-check' data-ok='{'' if c.ok is None else str(c.ok).lower()}'>"
            f"<div class='tb-label'>{escape(c.label)}</div>"
            f"<div class='tb-value'>{_parts(c.value)}</div>"
            f"<div class='tb-target'>{target}{mark(c.ok)}</div>"
            + (f"<div class='tb-detail'>{escape(c.detail)}</div>" if c.detail else "")
            + "</div>"
        )
    return (f"<section class='tb-verdict {cls}' id='verdict'>"
            f"<div class='tb-overall'>{escape(overall)}</div>"
            f"<div class='tb-checks'>{''.join(cards)}</div></section>")


# --- tables -----------------------------------------------------------------------------------


def params_table(groups: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> str:
    """Groups of (name, value) rows side by side, wrapping to fewer columns on narrow pages."""
    out = ["<div class='tb-params' id='parameters'>"]
    for title, rows in groups:
        out.append(f"<table><tr><th class='l' colspan='2'>{escape(title)}</th></tr>")
        out += [f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rows]
        out.append("</table>")
    out.append("</div>")
    return "".join(out)


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    left: Sequence[int] = (),
    names: Sequence[int] = (),
    wrap: Sequence[int] = (),
    table_id: str | None = None,
    narrow: bool = False,
) -> str:
    """A full-width table that fits the page: ``names`` columns are cut with an ellipsis
    (the full text on hover), ``wrap`` columns break anywhere, ``left`` ones align left;
    ``narrow`` ones take the width of their content instead of the page's."""
    ident = f" id='{escape(table_id)}'" if table_id else ""
    cls = "tb-table tb-narrow" if narrow else "tb-table"
    out = [f"<div class='tb-scroll'><table class='{cls}'{ident}><tr>"]
    out += [f"<th class='{'l' if i in left or i in names or i in wrap else ''}'>{escape(h)}</th>"
            for i, h in enumerate(headers)]
    out.append("</tr>")
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            if i in names:
                cells.append(f"<td class='l tb-name' title='{escape(v)}'>{escape(v)}</td>")
            elif i in wrap:
                cells.append(f"<td class='tb-wrap'>{escape(v)}</td>")
            else:
                cells.append(f"<td class='{'l' if i in left else ''}'>{escape(v)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table></div>")
    return "".join(out)


# --- image cards ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextCrop:
    """One carried word: its string and where it sits in the original and the decoded image
    (image sources: data URIs or relative URLs; None where that image is not at hand)."""

    text: str
    original_src: str | None = None
    decoded_src: str | None = None


@dataclass(frozen=True, slots=True)
class Outline:
    """A region of the decoded picture drawn from a carried word (the sender's reading,
    not the camera's pixels): its quad in fractions of the image's width and height, the
    string, and the spotter's confidence (None: not carried)."""

    quad: Sequence[tuple[float, float]]
    text: str
    score: float | None = None


LOW_CONFIDENCE = 0.8  # outlines of words read with less confidence are dashed


@dataclass(frozen=True, slots=True)
class ImageCard:
    """One image as the ground has it. ``strings`` None: the text section has not landed;
    an empty list: it landed without words; ``text_path`` False: no words line at all."""

    title: str
    thumb_src: str | None = None
    href: str | None = None
    original_src: str | None = None
    status: str = ""
    meta: Sequence[tuple[str, str]] = ()
    strings: Sequence[str] | None = None
    crops: Sequence[TextCrop] = field(default_factory=tuple)
    card_id: str | None = None
    text_path: bool = True  # False: no words are ever carried, so none are awaited
    outlines: Sequence[Outline] = ()  # over the thumbnail, with a toggle
    warnings: Sequence[str] = ()  # shown above the figures, marked (a figure not to trust)
    details: Sequence[tuple[str, str]] = ()  # for a technician: folded away under "details"
    seen: bool | None = None  # None: no seen mark; else the coordinator's mark and its button


def _img(src: str | None, alt: str) -> str:
    if src is None:
        return "<span class='tb-muted'>–</span>"
    return f"<img src='{escape(src)}' alt='{escape(alt)}'>"


def _outlines(outlines: Sequence[Outline]) -> str:
    """An SVG over the thumbnail (coordinates in fractions of the image), a polygon and a
    tooltip a word: the string and the spotter's confidence."""
    polys = []
    for o in outlines:
        pts = " ".join(f"{float(x):.4f},{float(y):.4f}" for x, y in o.quad)
        conf = "" if o.score is None else f" · spotter confidence {o.score:.2f}"
        low = " class='tb-low'" if o.score is not None and o.score < LOW_CONFIDENCE else ""
        polys.append(
            f"<polygon{low} points='{pts}' vector-effect='non-scaling-stroke'>"
            f"<title>carried: {escape(o.text)}{conf} (the sender's reading)</title></polygon>"
        )
    return (
        "<svg class='tb-outline' viewBox='0 0 1 1' preserveAspectRatio='none'>"
        f"{''.join(polys)}</svg>"
    )


def image_card(card: ImageCard) -> str:
    ident = f" id='{escape(card.card_id)}'" if card.card_id else ""
    pics = []
    if card.thumb_src is not None:
        img = _img(card.thumb_src, f"{card.title} decoded")
        if card.href is not None:
            img = f"<a class='tb-full' href='{escape(card.href)}' target='_blank'>{img}</a>"
            cap = "decoded (click: full size)"
        else:
            cap = "decoded"
        if card.outlines:
            pics.append(
                "<label class='tb-toggle'><input type='checkbox' class='tb-ol' checked> "
                "outline the words drawn from the carried text</label>"
            )
            img = f"<div class='tb-over'>{img}{_outlines(card.outlines)}</div>"
            cap += "; outlined: drawn from the sender's reading, not camera pixels"
        pics.append(f"<figure>{img}<figcaption>{cap}</figcaption></figure>")
    else:
        pics.append("<p class='tb-muted'>no decoded image yet</p>")
    if card.original_src is not None:
        pics.append(f"<figure>{_img(card.original_src, f'{card.title} original')}"
                    "<figcaption>original (simulation only)</figcaption></figure>")
    info = [f"<h3>{escape(card.title)}</h3>"]
    if card.seen is not None:
        label = "seen ✓ (undo)" if card.seen else "mark seen"
        info.append(f"<button type='button' class='tb-seen-btn' data-seen='{int(not card.seen)}'>"
                    f"{label}</button>")
    if card.status:
        info.append(f"<div class='tb-meta'><b>{escape(card.status)}</b></div>")
    info += [f"<div class='tb-note tb-warn'>⚠ {escape(w)}</div>" for w in card.warnings]
    if card.meta:
        info.append("<div class='tb-meta'>" + " · ".join(
            f"{escape(k)} {escape(v)}" for k, v in card.meta) + "</div>")
    if not card.text_path:
        pass
    elif card.strings is None:
        info.append("<div class='tb-strings tb-muted'>words: not landed</div>")
    else:
        words = " | ".join(escape(s) for s in card.strings) or "(none)"
        info.append(f"<div class='tb-strings'>words: <b>{words}</b></div>")
    if card.crops:
        # the ground has no original: its column only where some crop has one
        orig = any(c.original_src is not None for c in card.crops)
        info.append("<table class='tb-crops'><tr>" + ("<th>original</th>" if orig else "")
                    + "<th>decoded</th><th>carried</th></tr>")
        info += [
            "<tr>" + (f"<td>{_img(c.original_src, 'original ' + c.text)}</td>" if orig else "")
            + f"<td>{_img(c.decoded_src, 'decoded ' + c.text)}</td><td>{escape(c.text)}</td></tr>"
            for c in card.crops
        ]
        info.append("</table>")
    if card.details:
        rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>"
                       for k, v in card.details)  # fmt: skip
        info.append("<details class='tb-details'><summary>details</summary>"
                    f"<table>{rows}</table></details>")
    cls = "tb-card tb-seen" if card.seen else "tb-card"
    return (f"<div class='{cls}'{ident}><div class='tb-pics'>{''.join(pics)}</div>"
            f"<div class='tb-info'>{''.join(info)}</div></div>")
