"""What ``fuselab-eval save_predictions=true`` writes for a generation run: ``predictions.jsonl``
(one line per test sample: id, references, hypothesis, score) and, for the first few samples,
attention maps as PNG: for an image modality the weights over its spatial grid laid on the
image, one panel per generated word; for a sequence modality the weights of each generated word
over its steps, under the input's features."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fuselab.errors import ConfigError


def write_generation_predictions(batches: list[dict[str, Any]], out_dir: Path) -> Path:
    if not batches:
        raise ConfigError("the test split gave no batch: nothing to write (check trainer.limit_test_batches)")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "predictions.jsonl"
    row = 0
    with open(path, "w") as f:
        for b in batches:
            for hyp, refs, score, n in zip(
                b["hypotheses"], b["references"], b["scores"].tolist(), b["lengths"].tolist()
            ):
                line = {"id": row, "references": refs, "hypothesis": hyp, "score": score, "tokens": n}
                f.write(json.dumps(line) + "\n")
                row += 1
    return path


def save_attention_maps(batches: list[dict[str, Any]], out_dir: Path, count: int = 4) -> list[Path]:
    """``attention_<id>.png`` for the first ``count`` test samples; nothing when the decoder has
    no attention (decoder.attention=none). Returns the files written."""
    if not batches or batches[0].get("attention") is None or count < 1:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = batches[0]
    segments, layouts, mask = first["memory"]
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for i in range(min(count, len(first["hypotheses"]))):
        words = first["hypotheses"][i].split() or ["(empty)"]
        n = int(first["lengths"][i])
        attention = first["attention"][i, :n].numpy()  # (tokens incl. end, N)
        labels = [*words[: n - 1], "<eos>"][:n] if n else []
        rows = [(m, a, b) for m, a, b in segments if bool(mask[i, a:b].any())]
        heights = [max(len(labels), 1) if layouts[m][0] == "grid" else 1.5 for m, _, _ in rows]
        fig, axes = plt.subplots(
            len(rows), 1, figsize=(8, 1.0 + 1.1 * sum(heights)), squeeze=False, gridspec_kw={"height_ratios": heights}
        )
        for ax, (m, a, b) in zip(axes[:, 0], rows):
            weights = attention[:, a:b]
            x = first["inputs"][m][i].numpy()
            layout = layouts[m]
            title = f"{m}: {weights.sum() / max(len(labels), 1):.2f} of each word's attention"
            if layout[0] == "grid":
                _grid_panels(fig, ax, x, weights, layout[1], layout[2], labels, title)
            else:
                valid = int(mask[i, a:b].sum())
                shown = ax.imshow(weights[:, :valid], aspect="auto", cmap="viridis", interpolation="nearest", vmin=0.0)
                fig.colorbar(shown, ax=ax, label="attention weight", fraction=0.04, pad=0.02)
                ax.set_yticks(range(len(labels)), labels)
                ax.set_xlabel(f"{m}: step")
                ax.set_title(title, fontsize=9)
        refs = " | ".join(first["references"][i])
        fig.suptitle(f"sample {i}: {first['hypotheses'][i]!r}  (reference: {refs})", fontsize=9)
        fig.tight_layout()
        path = out_dir / f"attention_{i}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _grid_panels(
    fig: Any, ax: Any, image: np.ndarray, weights: np.ndarray, h: int, w: int, labels: list[str], title: str
) -> None:
    """The image once per generated word (one row of panels), that word's grid weights over it."""
    ax.axis("off")
    picture = image.mean(0) if image.ndim == 3 else image
    spec = ax.get_subplotspec().subgridspec(len(labels), 1, hspace=0.35)
    top = float(weights.max()) or 1.0  # one colour scale for every word's panel
    for j, label in enumerate(labels):
        sub = fig.add_subplot(spec[j, 0])
        extent = (0, picture.shape[1], picture.shape[0], 0)
        sub.imshow(picture, cmap="gray", aspect="auto", extent=extent)
        heat = np.kron(weights[j].reshape(h, w), np.ones((picture.shape[0] // h or 1, picture.shape[1] // w or 1)))
        shown = sub.imshow(heat, cmap="inferno", alpha=0.55, aspect="auto", extent=extent, vmin=0.0, vmax=top)
        fig.colorbar(shown, ax=sub, fraction=0.04, pad=0.02).ax.tick_params(labelsize=6)
        sub.set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
        if j == 0:
            sub.set_title(title, fontsize=9)
        sub.set_xticks([])
        sub.set_yticks([])
