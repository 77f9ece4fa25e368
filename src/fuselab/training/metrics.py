"""Metrics of each target kind, the monitored quantity, and the test confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, PearsonCorrCoef
from torchmetrics.classification import Accuracy, F1Score, MulticlassConfusionMatrix

from fuselab.data.specs import TargetSpec
from fuselab.training.affect_metrics import AffectMetrics


def flatten_metrics(values: dict[str, Any], prefix: str = "") -> dict[str, torch.Tensor]:
    """{"val/affect": {"acc2": t}} and {"val/acc": t} alike -> flat {name: scalar tensor}."""
    flat: dict[str, torch.Tensor] = {}
    for k, v in values.items():
        if isinstance(v, dict):
            flat.update(flatten_metrics(v))
        else:
            flat[prefix + k] = torch.as_tensor(v)
    return flat


def build_metrics(target: TargetSpec) -> MetricCollection:
    n = target.num_outputs
    if target.metric_set == "affect":
        return MetricCollection({"affect": AffectMetrics()})
    if target.kind == "multiclass":
        return MetricCollection(
            {
                "acc": Accuracy(task="multiclass", num_classes=n),
                "f1_macro": F1Score(task="multiclass", num_classes=n, average="macro"),
            }
        )
    if target.kind == "multilabel":
        return MetricCollection(
            {
                "f1_micro": F1Score(task="multilabel", num_labels=n, average="micro"),
                "f1_macro": F1Score(task="multilabel", num_labels=n, average="macro"),
            }
        )
    return MetricCollection(
        {"mae": MeanAbsoluteError(), "mse": MeanSquaredError(), "corr": PearsonCorrCoef(num_outputs=n)}
    )


MONITORS = {"multiclass": ("val/acc", "max"), "multilabel": ("val/f1_micro", "max"), "regression": ("val/mae", "min")}


def monitor_for(target: TargetSpec) -> tuple[str, str]:
    """The validation metric that selects the best checkpoint, and its mode."""
    return MONITORS[target.kind]


def predictions(target: TargetSpec, logits: torch.Tensor) -> torch.Tensor:
    """What the metrics compare with the target: class ids (B,) for multiclass, probabilities
    (B, O) for multilabel, values (B,) or (B, O) for regression."""
    if target.kind == "multiclass":
        return logits.argmax(-1)
    if target.kind == "multilabel":
        return torch.sigmoid(logits)
    return logits.squeeze(-1) if logits.shape[-1] == 1 else logits


def save_confusion_matrix(
    confusion: MulticlassConfusionMatrix, target: TargetSpec, out_dir: Path, loggers: Sequence[Any] = ()
) -> Path:
    """confusion_matrix.csv and .png (torchmetrics' plot) in ``out_dir``; rows: true class,
    columns: predicted. Also logged as an image to wandb when a wandb logger is on."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = confusion.compute().cpu()
    names = list(target.class_names) or [str(i) for i in range(len(cm))]
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "confusion_matrix.csv", "w") as f:
        f.write("true\\predicted," + ",".join(names) + "\n")
        for name, row in zip(names, cm.tolist()):
            f.write(name + "," + ",".join(str(int(v)) for v in row) + "\n")
    side = 1.6 + 0.45 * len(names)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    confusion.plot(cm, ax=ax, labels=names, add_text=len(names) <= 25)
    ax.set_title("test confusion matrix")
    fig.tight_layout()
    png = out_dir / "confusion_matrix.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            lg.log_image(key="test/confusion_matrix", images=[str(png)])
    return png
