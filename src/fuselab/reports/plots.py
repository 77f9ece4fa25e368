"""PNG plots of comparisons (matplotlib, headless): a bar chart per axis, a heatmap of two axes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart_png(
    labels: Sequence[str],
    means: Sequence[float],
    stds: Sequence[float],
    metric: str,
    axis: str,
    path: Path,
    counts: Sequence[int] | None = None,
) -> Path:
    """One bar per value of ``axis``: the mean of ``metric`` over the runs that have it, an error
    bar of one std where there are two runs or more, and each bar's number of runs under it."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(labels) + 2.0), 3.6))
    ax.bar(range(len(labels)), means, color="#4C72B0")
    spread = [i for i, sd in enumerate(stds) if np.isfinite(sd)]  # a std needs two runs
    if spread:
        ax.errorbar(spread, [means[i] for i in spread], yerr=[stds[i] for i in spread], fmt="none", capsize=4, c="k")
    turn = max(map(len, labels)) > 8
    ticks = [f"{lab}\nn={n}" for lab, n in zip(labels, counts)] if counts is not None else list(labels)
    ax.set_xticks(range(len(labels)), ticks, rotation=30 if turn else 0, ha="right" if turn else "center")
    ax.set_xlabel(axis)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} by {axis}", fontsize=10)
    fig.text(0.99, 0.01, "mean ± std over the other axes and seeds", ha="right", va="bottom", fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def heatmap_png(
    rows: Sequence[str], cols: Sequence[str], values: np.ndarray, metric: str, row_axis: str, col_axis: str, path: Path
) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.8 + 1.1 * len(cols), 1.4 + 0.5 * len(rows)))
    im = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(col_axis)
    ax.set_ylabel(row_axis)
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for i in range(len(rows)):
        for j in range(len(cols)):
            if np.isfinite(values[i, j]):
                color = "black" if values[i, j] > middle else "white"  # readable on viridis
                ax.text(j, i, f"{values[i, j]:.3f}", ha="center", va="center", fontsize=8, color=color)
    fig.colorbar(im, ax=ax, label=metric)
    ax.set_title(f"{metric}: {row_axis} x {col_axis}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def curves_png(curves: dict[str, tuple[Sequence[int], Sequence[float]]], metric: str, path: Path) -> Path:
    """One line per group: the monitored validation metric over epochs (mean over seeds)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.0, 4.0))
    styles = ["-", "--", ":", "-."]
    for i, (label, (epochs, values)) in enumerate(curves.items()):
        ax.plot(epochs, values, styles[(i // 10) % 4], marker="o", markersize=2, linewidth=1, label=label)
    ax.set_xlabel("epoch (the mean runs as long as the shortest run of its group)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per epoch (mean over seeds); a curve still rising at its end is budget-limited", fontsize=8)
    ax.legend(fontsize=5, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
