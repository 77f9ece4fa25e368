"""``contributions.png``: each modality's Shapley value (bars) and the pairwise interaction
matrix (a diverging colour scale centred on 0, with its values written in the cells)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot_contributions(report: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = report["metrics"][0]
    names = report["modalities"]
    values = [report["shapley"][metric][m] for m in names]
    pairs = report["interactions"][metric]
    n = len(names)
    fig, axes = plt.subplots(1, 2 if n > 1 else 1, figsize=(4.0 + 0.9 * n + (3.0 if n > 1 else 0), 3.4), squeeze=False)
    ax = axes[0, 0]
    colours = ["tab:blue" if v >= 0 else "tab:red" for v in values]
    ax.bar(range(n), values, color=colours)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_xticks(range(n), names, rotation=30 if n > 3 else 0, ha="right" if n > 3 else "center")
    ax.set_ylabel(f"Shapley value ({metric} gain)")
    ax.set_title(f"gain over the prior: {report['gain_over_prior'][metric]:.3f}", fontsize=9)
    for i, v in enumerate(values):
        ax.annotate(f"{v:.3f}", (i, v), ha="center", va="bottom" if v >= 0 else "top", fontsize=7)
    if n > 1:
        grid = np.full((n, n), np.nan)
        for key, v in pairs.items():
            a, b = key.split("+")
            grid[names.index(a), names.index(b)] = grid[names.index(b), names.index(a)] = v
        bound = max(float(np.nanmax(np.abs(grid))), 1e-6)
        ax2 = axes[0, 1]
        image = ax2.imshow(grid, cmap="coolwarm", vmin=-bound, vmax=bound)
        ax2.set_xticks(range(n), names, rotation=30 if n > 3 else 0, ha="right" if n > 3 else "center")
        ax2.set_yticks(range(n), names)
        for i in range(n):
            for j in range(n):
                if i != j:
                    ax2.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", fontsize=7)
        ax2.set_title("interaction (+: together more than apart)", fontsize=9)
        fig.colorbar(image, ax=ax2, fraction=0.046, pad=0.04)
    if report.get("note"):
        fig.text(
            0.01, 0.01, "trained without modality dropout: scores measure robustness, not contribution", fontsize=6
        )
    fig.tight_layout(rect=(0, 0.04 if report.get("note") else 0, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
