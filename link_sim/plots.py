"""PNG plots of a report: latency CDF, timeline of contacts and deliveries, bpp budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt
import numpy as np

from link_sim.records import MissionResult
from link_sim.report import image_rows

__all__ = ["plot_all", "plot_sweep"]

_DPI = 110
_MAX_LABELLED_ROWS = 40  # beyond this the timeline keeps its height and drops row labels


def plot_all(results: list[MissionResult], out_dir: Path) -> dict[str, Path]:
    paths = {
        "latency_cdf": out_dir / "latency_cdf.png",
        "timeline": out_dir / "timeline.png",
        "bpp_budget": out_dir / "bpp_budget.png",
    }
    _latency_cdf(results, paths["latency_cdf"])
    _timeline(results[0], paths["timeline"])
    _bpp_budget(results[0], paths["bpp_budget"])
    return paths


def _latency_cdf(results: list[MissionResult], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    pooled: list[float] = []
    for res in results:
        lat = sorted(r.latency_s for r in res.records if r.latency_s is not None)
        pooled += lat
        if len(results) > 1 and lat:
            ax.step(lat, np.arange(1, len(lat) + 1) / len(res.records), where="post",
                    color="0.75", lw=0.8)
    n_total = sum(len(r.records) for r in results)
    if pooled:
        x = np.sort(pooled)
        ax.step(x, np.arange(1, len(x) + 1) / n_total, where="post", color="C0", lw=2,
                label=f"all runs ({len(results)})" if len(results) > 1 else "run 0")
        for q, style in ((50, "--"), (95, ":")):
            v = float(np.percentile(x, q))
            ax.axvline(v, color="C3", ls=style, lw=1, label=f"p{q} of delivered {v:.1f} s")
    ax.set_xlabel("capture → decoded latency (s)")
    ax.set_ylabel("fraction of captured images")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{results[0].scenario.name}: end-to-end latency (undelivered never reach 1)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)


def _timeline(res: MissionResult, path: Path) -> None:
    s = res.scenario
    recs = res.records
    rows = min(_MAX_LABELLED_ROWS, max(4, len(recs)))
    fig, (ax, ax_link) = plt.subplots(
        2, 1, figsize=(8.0, 1.6 + 0.28 * rows), sharex=True,
        gridspec_kw={"height_ratios": [rows, 1.5]},
    )
    windows = res.contacts.windows or ((0.0, s.duration_s),)
    for a in (ax, ax_link):
        for start, end in windows:  # an edge line keeps short passes visible on long plots
            a.axvspan(start, end, facecolor="C2", alpha=0.15, edgecolor="C2", lw=0.6)
    for y, r in enumerate(recs):
        end = r.decoded_s or r.delivered_s or (s.duration_s if r.first_byte_s else r.capture_s)
        ax.plot([r.capture_s, end], [y, y], color="0.6", lw=1)
        ax.plot(r.capture_s, y, "o", color="C0", ms=4)
        if r.first_byte_s is not None:
            ax.plot(r.first_byte_s, y, "|", color="k", ms=8)
        ts = [t for t in r.section_delivered_s[2:] if t is not None]
        ax.plot(ts, [y] * len(ts), ".", color="C1", ms=5)
        if r.text_delivered_s is not None:
            ax.plot(r.text_delivered_s, y, "D", color="C4", ms=4)
        if r.decoded_s is not None:
            ax.plot(r.decoded_s, y, "*", color="C3" if r.delivered_s is None else "C2", ms=9)
        elif r.dropped:
            ax.plot(r.capture_s, y, "x", color="C3", ms=8)
    if len(recs) <= _MAX_LABELLED_ROWS:
        ax.set_yticks(range(len(recs)))
        ax.set_yticklabels([f"{r.index}:{r.image}" for r in recs], fontsize=6)
    else:
        ax.set_ylabel("image index")
    ax.invert_yaxis()
    ax.set_title(
        f"{s.name}: capture (o), first byte (|), words (◆), y groups delivered (.), "
        "decoded (*); green bands: contacts", fontsize=9,
    )
    log = res.forward.log
    lost = np.asarray(log.lost, bool)
    start = np.asarray(log.start_s)
    ax_link.eventplot([start[~lost], start[lost]], colors=["C0", "C3"], lineoffsets=[1, 0],
                      linelengths=0.8, linewidths=0.6)
    ax_link.set_yticks([0, 1])
    ax_link.set_yticklabels(["lost", "frames"], fontsize=7)
    ax_link.set_xlabel("mission time (s)")
    ax_link.set_xlim(0, s.duration_s)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)


def _bpp_budget(res: MissionResult, path: Path) -> None:
    rows = [r for r in image_rows(res) if r["codec_bytes"] is not None]
    fig, ax = plt.subplots(figsize=(7.0, 4.4))
    if rows:
        x = np.arange(len(rows))
        pixels = np.array([r.pixels for r in res.records if r.bundle_bytes is not None], float)
        codec = np.array([r["codec_bpp"] for r in rows])
        parts = [
            ("codec (.tbx)", codec, "C0"),
            ("framing + descriptor + EOF", 8 * np.array([r["header_bytes"] for r in rows]) / pixels,
             "C7"),
            ("FEC parity", 8 * np.array([r["fec_bytes"] for r in rows]) / pixels, "C4"),
            ("retransmission", 8 * np.array([r["retransmission_bytes"] for r in rows]) / pixels,
             "C3"),
        ]
        bottom = np.zeros(len(rows))
        for label, values, color in parts:
            ax.bar(x, values, bottom=bottom, color=color, label=label, width=0.8)
            bottom += values
        if res.scenario.rate.policy == "bpp":
            ax.axhline(res.scenario.rate.bpp, color="k", ls="--", lw=1, label="rate policy bpp")
        ax.set_xticks(x)
        ax.set_xticklabels([str(r["index"]) for r in rows], fontsize=7)
        ax.set_ylim(0, 1.1 * float(bottom.max()))
        psnr = [r["psnr_db"] for r in rows]
        if any(p is not None for p in psnr):
            ax2 = ax.twinx()
            ax2.plot(x, [np.nan if p is None else p for p in psnr], "o-", color="C1", ms=3,
                     lw=1, label="PSNR of what was decoded (dB)")
            ax2.set_ylabel("PSNR (dB)", color="C1")
    ax.set_xlabel("image index")
    ax.set_ylabel("bits per pixel")
    ax.set_title(f"{res.scenario.name}: codec bits vs on-air bits per image")
    handles = [h for a in fig.axes for h in a.get_legend_handles_labels()[0]]
    labels = [lab for a in fig.axes for lab in a.get_legend_handles_labels()[1]]
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)


def plot_sweep(points: list[dict[str, Any]], param: str, path: Path) -> None:
    """Mean latency (solid) and delivered fraction (dashed), mean ± 95 % CI, against the
    first swept parameter; one colour per combination of the other parameters."""
    series: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        rest = ", ".join(f"{k}={v}" for k, v in p["overrides"].items() if k != param)
        series.setdefault(rest, []).append(p)
    xs_all = [p["value"] for p in points]
    numeric = all(isinstance(v, int | float) for v in xs_all)
    labels = list(dict.fromkeys(str(v) for v in xs_all))
    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    ax2 = ax.twinx()
    for i, (rest, pts) in enumerate(series.items()):
        xs = [p["value"] if numeric else labels.index(str(p["value"])) for p in pts]
        lat = [p["summary"]["latency_mean_s"] for p in pts]
        frac = [p["summary"]["delivered_fraction"] for p in pts]
        ax.errorbar(xs, [np.nan if m["mean"] is None else m["mean"] for m in lat],
                    yerr=[m["ci95"] or 0 for m in lat], fmt="o-", color=f"C{i}", capsize=3,
                    label=rest or None)
        ax2.errorbar(xs, [np.nan if m["mean"] is None else m["mean"] for m in frac],
                     yerr=[m["ci95"] or 0 for m in frac], fmt="s--", color=f"C{i}",
                     capsize=3, alpha=0.6)
    ax.set_xlabel(param)
    ax.set_ylabel("mean capture → decoded latency (s), solid")
    ax2.set_ylabel("fraction of images delivered, dashed")
    ax2.set_ylim(0, 1.05)
    if numeric and min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 10:
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels)
    if len(series) > 1:
        fig.legend(fontsize=7, loc="lower center", ncol=min(3, len(series)), frameon=False)
    ax.grid(alpha=0.3)
    ax.set_title(f"sweep of {param}")
    fig.tight_layout(rect=(0, 0.07 if len(series) > 1 else 0, 1, 1))
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
