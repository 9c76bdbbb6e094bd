"""Human views of an RD result document: a rich table and a PNG plot of the curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["markdown_table", "plot_rd", "print_tables"]

_ORDER = ("ours", "avif", "heif", "jxl", "webp", "jpeg")
_COLOURS = {
    "ours": "tab:red",
    "avif": "tab:blue",
    "heif": "tab:purple",
    "jxl": "tab:brown",
    "webp": "tab:orange",
    "jpeg": "tab:green",
}


def _sorted_codecs(doc: dict[str, Any]) -> list[str]:
    names = list(doc["codecs"])
    return sorted(names, key=lambda c: (_ORDER.index(c) if c in _ORDER else len(_ORDER), c))


def _metric_table(doc: dict[str, Any], key: str, title: str, fmt: str) -> Table:
    targets = doc["bpp_targets"]
    table = Table(title=title)
    table.add_column("codec")
    for t in targets:
        table.add_column(f"{t:g}", justify="right")
    for c in _sorted_codecs(doc):
        table.add_row(c, *_cells(doc, c, lambda r: format(r[key], fmt)))
    return table


def _cells(doc: dict[str, Any], codec: str, fmt) -> list[str]:
    """One cell per target bpp: ``fmt(average row)``, blank or "k/n fit" when incomplete."""
    by_target = {r["target_bpp"]: r for r in doc["codecs"][codec]["average"]}
    cells = []
    for t in doc["bpp_targets"]:
        r = by_target.get(t)
        if r is None:
            cells.append("")
        elif not r["complete"]:
            cells.append(f"{r['n_fit']}/{r['n_images']} fit")
        else:
            cells.append(fmt(r))
    return cells


def print_tables(doc: dict[str, Any], console: Console | None = None) -> None:
    """Average PSNR, MS-SSIM and actual bpp per codec and target, then BD against AVIF."""
    console = console or Console()
    n = len(doc["dataset"]["images"])
    head = f"mean of {n} images, by target bpp"
    console.print(_metric_table(doc, "psnr_db", f"PSNR dB ({head})", ".2f"))
    console.print(_metric_table(doc, "ms_ssim", f"MS-SSIM ({head})", ".4f"))
    console.print(_metric_table(doc, "bpp", f"actual bpp ({head})", ".4f"))
    if doc["bd"]:
        console.print(_bd_table(doc, doc["bd"], "all complete points"))
    window = doc.get("bd_window")
    if window and window["codecs"]:
        lo, hi = window["target_bpp"]
        console.print(_bd_table(doc, window["codecs"], f"target bpp {lo:g}–{hi:g}"))
    for c, why in doc["unavailable"].items():
        console.print(f"[yellow]{c} not evaluated: {why}[/yellow]")


def _bd_table(doc: dict[str, Any], bd: dict[str, Any], over: str) -> Table:
    table = Table(title=f"Bjøntegaard deltas against AVIF (average curves, {over})")
    table.add_column("codec")
    for m in ("cubic", "pchip"):
        table.add_column(f"BD-rate % ({m})", justify="right")
        table.add_column(f"BD-PSNR dB ({m})", justify="right")
    for c in _sorted_codecs(doc):
        if c not in bd:
            continue
        cells = []
        for m in ("cubic", "pchip"):
            r = bd[c][m]
            rate, dpsnr = r.get("bd_rate_pct"), r.get("bd_psnr_db")
            cells.append("n/a" if rate is None else f"{rate:+.1f}")
            cells.append("n/a" if dpsnr is None else f"{dpsnr:+.2f}")
        table.add_row(c, *cells)
    return table


def markdown_table(doc: dict[str, Any]) -> str:
    """Average PSNR (dB) / MS-SSIM per codec and target bpp as a Markdown table."""
    targets = doc["bpp_targets"]
    lines = [
        "| codec | " + " | ".join(f"{t:g}" for t in targets) + " |",
        "|---|" + "---:|" * len(targets),
    ]
    for c in _sorted_codecs(doc):
        cells = _cells(doc, c, lambda r: f"{r['psnr_db']:.2f} / {r['ms_ssim']:.3f}")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_rd(doc: dict[str, Any], path: Path) -> None:
    """PSNR and MS-SSIM against bpp for every codec's complete average points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_p, ax_m) = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    n = len(doc["dataset"]["images"])
    for c in _sorted_codecs(doc):
        entry = doc["codecs"][c]
        pts = [r for r in entry["average"] if r["complete"]]
        if not pts:
            continue
        x = [r["bpp"] for r in pts]
        style = {
            "marker": "o",
            "linewidth": 2.4 if c == "ours" else 1.4,
            "label": entry["label"],
            "color": _COLOURS.get(c),
        }
        ax_p.plot(x, [r["psnr_db"] for r in pts], **style)
        ax_m.plot(x, [r["ms_ssim"] for r in pts], **style)
    for ax, ylabel in ((ax_p, "PSNR (dB, RGB)"), (ax_m, "MS-SSIM (RGB)")):
        ax.set_xlabel("bits per pixel (real file bytes)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.set_xlim(left=0)
    ax_p.legend(loc="lower right", fontsize=8)
    name = Path(doc["dataset"]["path"]).name
    fig.suptitle(
        f"{name} ({n} images): each codec at the same per-image byte budget, "
        "best of quality × downscale search"
    )
    fig.savefig(path, dpi=120)
    plt.close(fig)
