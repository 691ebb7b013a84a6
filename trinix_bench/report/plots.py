"""Draw the report's PNG figures from the ``plots`` part of the view model (model.py).

Each figure is a grid: one row per (op, dtype), one column per mode, configs on the x axis in
order of size (rows * hidden), one line per provider. We draw on a ``matplotlib.figure.Figure``
with an explicit Agg canvas, so nothing here touches pyplot's global state or the user's backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# A value range wider than this factor gets a log axis, so small configs stay readable.
LOG_SCALE_SPAN = 10.0
PANEL_WIDTH_IN, PANEL_HEIGHT_IN, LEGEND_WIDTH_IN = 5.0, 3.6, 1.6
# Height kept above the panels for the figure title; tight_layout packs the panels below it.
TITLE_BAND_IN = 0.6
DPI = 110

# Stable colours: a provider keeps its colour across panels and figures. Ours are drawn thicker.
_PROVIDER_COLOURS = {
    "trinix": "#d62728", "triton": "#ff7f0e", "pytorch": "#1f77b4", "torch_native": "#17becf",
    "torch_compile": "#9467bd", "apex": "#8c564b", "liger": "#2ca02c", "quack": "#e377c2",
    "flashinfer": "#7f7f7f", "vllm": "#bcbd22",
}
_FALLBACK_COLOURS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")
_OUR_PROVIDERS = ("trinix", "triton")


def _colour(provider: str, unknown: list[str]) -> str:
    if provider in _PROVIDER_COLOURS:
        return _PROVIDER_COLOURS[provider]
    if provider not in unknown:
        unknown.append(provider)
    return _FALLBACK_COLOURS[unknown.index(provider) % len(_FALLBACK_COLOURS)]


def write_plots(figures: list[dict[str, Any]], plots_dir: Path) -> list[Path]:
    """Write one PNG per figure spec into ``plots_dir``; returns the paths written."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    return [draw_figure(spec, plots_dir / spec["filename"]) for spec in figures]


def draw_figure(spec: dict[str, Any], path: Path) -> Path:
    build_figure(spec).savefig(path, format="png")
    return path


def build_figure(spec: dict[str, Any]):
    """The laid-out ``Figure`` of one figure spec, on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows, cols = max(spec["rows"], 1), max(spec["cols"], 1)
    height = PANEL_HEIGHT_IN * rows + TITLE_BAND_IN
    figure = Figure(figsize=(PANEL_WIDTH_IN * cols + LEGEND_WIDTH_IN, height), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, cols, squeeze=False)
    used = set()
    legend: dict[str, Any] = {}
    unknown: list[str] = []
    for panel in spec["panels"]:
        ax = axes[panel["row"]][panel["col"]]
        used.add((panel["row"], panel["col"]))
        _draw_panel(ax, panel, spec, legend, unknown)
    for r in range(rows):
        for c in range(cols):
            if (r, c) not in used:
                axes[r][c].set_visible(False)
    figure.suptitle(spec["title"], fontsize=13)
    if legend:
        # One legend for the whole figure, outside the top-right panel, so it never hides data.
        names = [p for p in spec["providers"] if p in legend]
        axes[0][cols - 1].legend([legend[p] for p in names], names, title="provider", loc="upper left",
                                 bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=9)
    # tight_layout ignores the suptitle; without the band it packs the top panels' titles under it.
    figure.tight_layout(rect=(0, 0, 1, 1 - TITLE_BAND_IN / height))
    return figure


def _draw_panel(ax, panel: dict[str, Any], spec: dict[str, Any], legend: dict, unknown: list[str]) -> None:
    positions = list(range(len(panel["x_labels"])))
    values = []
    for series in panel["series"]:
        points = [(x, v) for x, v in zip(positions, series["values"]) if v is not None]
        if not points:
            continue
        values += [v for _, v in points]
        ours = series["provider"] in _OUR_PROVIDERS
        # trinix and forced triton often coincide: a solid line under a dashed one keeps both visible.
        dashed = series["provider"] == "triton"
        (line,) = ax.plot([x for x, _ in points], [v for _, v in points], marker="s" if dashed else "o",
                          markersize=6 if ours else 4, linewidth=2.4 if ours else 1.3,
                          linestyle="--" if dashed else "-", color=_colour(series["provider"], unknown),
                          label=series["provider"], zorder=3 if ours else 2)
        legend.setdefault(series["provider"], line)
    if spec["reference_line"] is not None:
        ax.axhline(spec["reference_line"], color="black", linewidth=0.8, linestyle="--", zorder=1)
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) >= LOG_SCALE_SPAN:
        ax.set_yscale("log")
    ax.set_title(panel["title"], fontsize=10)
    ax.set_ylabel(spec["ylabel"], fontsize=9)
    ax.set_xlabel("config (batch×seq×hidden), by size", fontsize=9)
    ax.set_xticks(positions)
    ax.set_xticklabels(panel["x_labels"], fontsize=7, rotation=30 if len(positions) > 4 else 0, ha="right" if len(positions) > 4 else "center")
    ax.grid(True, which="both", alpha=0.3)
    if not values:
        ax.text(0.5, 0.5, "no ok rows", transform=ax.transAxes, ha="center", va="center", color="gray")
