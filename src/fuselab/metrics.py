"""Metrics and the monitored quantity, by task kind."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, PearsonCorrCoef
from torchmetrics.classification import Accuracy, F1Score

from fuselab.data.specs import TaskSpec
from fuselab.metrics_affect import AffectMetrics


def flatten_metrics(values: dict[str, Any], prefix: str = "") -> dict[str, torch.Tensor]:
    """{"val/affect": {"acc2": t}} and {"val/acc": t} alike -> flat {name: scalar tensor}."""
    flat: dict[str, torch.Tensor] = {}
    for k, v in values.items():
        if isinstance(v, dict):
            flat.update(flatten_metrics(v))
        else:
            flat[prefix + k] = torch.as_tensor(v)
    return flat


def build_metrics(task: TaskSpec) -> MetricCollection:
    n = task.num_outputs
    if task.metric_set == "affect":
        return MetricCollection({"affect": AffectMetrics()})
    if task.kind == "multiclass":
        return MetricCollection(
            {
                "acc": Accuracy(task="multiclass", num_classes=n),
                "f1_macro": F1Score(task="multiclass", num_classes=n, average="macro"),
            }
        )
    if task.kind == "multilabel":
        return MetricCollection(
            {
                "f1_micro": F1Score(task="multilabel", num_labels=n, average="micro"),
                "f1_macro": F1Score(task="multilabel", num_labels=n, average="macro"),
            }
        )
    return MetricCollection(
        {"mae": MeanAbsoluteError(), "mse": MeanSquaredError(), "corr": PearsonCorrCoef(num_outputs=n)}
    )


def monitor_for(task: TaskSpec) -> tuple[str, str]:
    """The validation metric that selects the best checkpoint, and its mode."""
    return {"multiclass": ("val/acc", "max"), "multilabel": ("val/f1_micro", "max"), "regression": ("val/mae", "min")}[
        task.kind
    ]


def predictions(task: TaskSpec, logits: torch.Tensor) -> torch.Tensor:
    """What the metrics compare with the target."""
    if task.kind == "multiclass":
        return logits.argmax(-1)
    if task.kind == "multilabel":
        return torch.sigmoid(logits)
    return logits.squeeze(-1) if logits.shape[-1] == 1 else logits


def save_confusion_matrix(cm: np.ndarray, task: TaskSpec, out_dir: Path, loggers: Sequence[Any] = ()) -> Path:
    """confusion_matrix.csv and .png in ``out_dir`` (rows: true class, columns: predicted);
    also logged as an image to wandb when a wandb logger is on."""
    from fuselab.plots import confusion_matrix_png

    names = list(task.class_names) or [str(i) for i in range(len(cm))]
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "confusion_matrix.csv", "w") as f:
        f.write("true\\predicted," + ",".join(names) + "\n")
        for name, row in zip(names, cm):
            f.write(name + "," + ",".join(str(int(v)) for v in row) + "\n")
    png = confusion_matrix_png(cm, names, out_dir / "confusion_matrix.png", title="test confusion matrix")
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            lg.log_image(key="test/confusion_matrix", images=[str(png)])
    return png
