"""Metrics and the monitored quantity, by task kind."""

from __future__ import annotations

import torch
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, PearsonCorrCoef
from torchmetrics.classification import Accuracy, F1Score

from fuselab.data.specs import TaskSpec


def build_metrics(task: TaskSpec) -> MetricCollection:
    n = task.num_outputs
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
