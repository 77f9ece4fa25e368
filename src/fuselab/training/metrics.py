"""Metrics of each target kind, the monitored quantity, and the test confusion matrix."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torchmetrics import MeanAbsoluteError, MeanSquaredError, Metric, MetricCollection, PearsonCorrCoef
from torchmetrics.classification import (
    Accuracy,
    F1Score,
    MulticlassConfusionMatrix,
    MultilabelConfusionMatrix,
    Precision,
    Recall,
)

from fuselab.data.specs import TargetSpec
from fuselab.errors import ConfigError
from fuselab.training.affect_metrics import AffectMetrics
from fuselab.training.text_metrics import GENERATION_DEFAULTS, GENERATION_METRICS, GenerationMetrics


def flatten_metrics(values: dict[str, Any], prefix: str = "") -> dict[str, torch.Tensor]:
    """{"val/affect": {"acc2": t}} and {"val/acc": t} alike -> flat {name: scalar tensor}."""
    flat: dict[str, torch.Tensor] = {}
    for k, v in values.items():
        if isinstance(v, dict):
            flat.update(flatten_metrics(v))
        else:
            flat[prefix + k] = torch.as_tensor(v)
    return flat


def _classification(kind: str, n: int) -> dict[str, Callable[[], Metric]]:
    """Every classification metric fuselab offers, by its logged name."""
    size = {"num_classes": n} if kind == "multiclass" else {"num_labels": n}
    made: dict[str, Callable[[], Metric]] = {"acc": lambda: Accuracy(task=kind, average="micro", **size)}
    for name, cls in (("f1", F1Score), ("precision", Precision), ("recall", Recall)):
        for avg in ("macro", "micro"):
            made[f"{name}_{avg}"] = lambda cls=cls, avg=avg: cls(task=kind, average=avg, **size)
    return made


AVAILABLE: dict[str, Callable[[int], dict[str, Callable[[], Metric]]]] = {
    "multiclass": lambda n: _classification("multiclass", n),
    "multilabel": lambda n: _classification("multilabel", n),
    "regression": lambda n: {
        "mae": MeanAbsoluteError,
        "mse": MeanSquaredError,
        "corr": lambda: PearsonCorrCoef(num_outputs=n),
    },
    # computed together by GenerationMetrics (text hypotheses against references)
    "generation": lambda n: dict.fromkeys(GENERATION_METRICS),
}
DEFAULTS = {
    "multiclass": ["acc", "f1_macro", "f1_micro", "precision_macro", "precision_micro", "recall_macro", "recall_micro"],
    "multilabel": ["f1_micro", "f1_macro", "precision_micro", "precision_macro", "recall_micro", "recall_macro"],
    "regression": ["mae", "mse", "corr"],
    "generation": GENERATION_DEFAULTS,
}
AFFECT = ("mae", "corr", "acc7", "acc5", "acc2", "f1", "acc2_has0", "f1_has0")


def metric_names(target: TargetSpec, names: Sequence[str] | None = None) -> list[str]:
    """The metrics a run logs: ``names`` (``model.metrics``) checked against what the target
    kind offers, or the kind's defaults. The affect set is computed as one."""
    if target.metric_set == "affect":
        if names:
            raise ConfigError(f"model.metrics: the affect targets log {list(AFFECT)} together; set model.metrics=null")
        return list(AFFECT)
    offered = AVAILABLE[target.kind](target.num_outputs)
    if not names:
        captions = ["cider"] if target.metric_set == "captions" else []
        return list(DEFAULTS[target.kind]) + captions
    unknown = [m for m in names if m not in offered]
    if unknown or len(set(names)) != len(names):
        raise ConfigError(
            f"model.metrics={list(names)}: a {target.kind} target offers {list(offered)} "
            f"(each once), e.g. model.metrics=[{','.join(DEFAULTS[target.kind][:2])}]"
        )
    return list(names)


def build_metrics(target: TargetSpec, names: Sequence[str] | None = None) -> MetricCollection | GenerationMetrics:
    if target.is_generation:
        return GenerationMetrics(metric_names(target, names))
    if target.metric_set == "affect":
        return MetricCollection({"affect": AffectMetrics()})
    offered = AVAILABLE[target.kind](target.num_outputs)
    return MetricCollection({m: offered[m]() for m in metric_names(target, names)})


MONITORS = {
    "multiclass": ("val/acc", "max"),
    "multilabel": ("val/f1_micro", "max"),
    "regression": ("val/mae", "min"),
    "generation": ("val/wer", "min"),
}
LOWER_IS_BETTER = ("loss", "mae", "mse", "wer", "cer")


def monitor_for(target: TargetSpec, monitor: str | None = None, names: Sequence[str] | None = None) -> tuple[str, str]:
    """The validation metric that selects the best checkpoint (and steps a plateau schedule),
    and its mode. ``monitor`` (``model.monitor``) may name any logged validation metric."""
    if not monitor:
        default, mode = MONITORS[target.kind]
        if target.metric_set != "affect" and names and default.split("/")[1] not in names:
            first = names[0]  # the default is not logged: the first metric asked for
            return f"val/{first}", "min" if first in LOWER_IS_BETTER else "max"
        return default, mode
    logged = ["loss", *metric_names(target, names)]
    name = monitor.split("/", 1)[1] if monitor.startswith("val/") else None
    if name not in logged:
        raise ConfigError(
            f"model.monitor={monitor} is not a validation metric this run logs; choose one of "
            f"{['val/' + m for m in logged]}"
        )
    return monitor, "min" if name in LOWER_IS_BETTER else "max"


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
    """confusion_matrix.csv and .png in ``out_dir``; rows: true class, columns: predicted. The
    picture shows the counts and, beside them, each row as shares of its class (the recall on
    the diagonal), each with its colour scale. Also logged to wandb when a wandb logger is on."""
    cm = confusion.compute().cpu()
    names = list(target.class_names) or [str(i) for i in range(len(cm))]
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "confusion_matrix.csv", "w") as f:
        f.write("true\\predicted," + ",".join(names) + "\n")
        for name, row in zip(names, cm.tolist()):
            f.write(name + "," + ",".join(str(int(v)) for v in row) + "\n")
    png = out_dir / "confusion_matrix.png"
    plot_confusion(cm.double().numpy(), names, png)
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            lg.log_image(key="test/confusion_matrix", images=[str(png)])
            log_wandb_confusion(lg, cm, names)
    return png


def plot_confusion(cm: Any, names: Sequence[str], png: Path) -> None:
    """Counts and row shares side by side, class names on both axes (turned only when long)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(names)
    shares = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    side = 2.2 + 0.42 * n
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 2.0, side + 0.6))
    turn = max(len(str(x)) for x in names) > 3
    for ax, values, title, fmt in (
        (axes[0], cm, "counts", "{:.0f}"),
        (axes[1], shares, "share of each true class (row)", "{:.2f}"),
    ):
        image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if values is shares else None)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks(range(n), names, rotation=45 if turn else 0, ha="right" if turn else "center")
        ax.set_yticks(range(n), names)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(title)
        if n <= 25:
            top = values.max() or 1
            for i in range(n):
                for j in range(n):
                    colour = "white" if values[i, j] > 0.6 * top else "black"
                    ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", color=colour, fontsize=8)
    fig.suptitle(f"test confusion matrix ({int(cm.sum())} samples)")
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def log_wandb_confusion(lg: Any, cm: torch.Tensor, names: Sequence[str]) -> None:
    """The confusion matrix as wandb's own interactive chart (``test/confusion_matrix_chart``),
    from the counts (a (true, predicted) pair per test sample, as its API takes)."""
    import wandb

    pairs = [(i, j) for i, row in enumerate(cm.tolist()) for j, n in enumerate(row) for _ in range(int(n))]
    chart = wandb.plot.confusion_matrix(
        y_true=[i for i, _ in pairs], preds=[j for _, j in pairs], class_names=list(names), title="test confusion"
    )
    lg.experiment.log({"test/confusion_matrix_chart": chart})


def log_wandb_per_class(loggers: Sequence[Any], per_class: dict[str, dict[str, float]]) -> None:
    """The per-class table of the test split (precision, recall, F1, support) for wandb loggers."""
    columns = ["class", "precision", "recall", "f1", "support"]
    rows = [[name, *(scores[c] for c in columns[1:])] for name, scores in per_class.items()]
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            lg.log_table(key="test/per_class", columns=columns, data=rows)


def per_class_scores(counts: torch.Tensor, names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class from (C, 4) counts of tp, fp, fn, support."""
    out = {}
    for name, (tp, fp, fn, support) in zip(names, counts.tolist()):
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(support)}
    return out


def multiclass_counts(cm: torch.Tensor) -> torch.Tensor:
    """(C, C) confusion matrix (rows true, columns predicted) -> (C, 4) tp, fp, fn, support."""
    tp = cm.diag()
    support = cm.sum(1)
    return torch.stack([tp, cm.sum(0) - tp, support - tp, support], 1)


def multilabel_counts(cms: torch.Tensor) -> torch.Tensor:
    """(L, 2, 2) per-label [[tn, fp], [fn, tp]] -> (L, 4) tp, fp, fn, support."""
    tp, fp, fn = cms[:, 1, 1], cms[:, 0, 1], cms[:, 1, 0]
    return torch.stack([tp, fp, fn, tp + fn], 1)


def save_label_confusions(confusion: MultilabelConfusionMatrix, target: TargetSpec, out_dir: Path) -> Path:
    """confusion_per_label.csv: tn, fp, fn, tp of each label of a multilabel target."""
    cms = confusion.compute().cpu()
    names = list(target.class_names) or [str(i) for i in range(len(cms))]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "confusion_per_label.csv"
    with open(path, "w") as f:
        f.write("label,tn,fp,fn,tp\n")
        for name, m in zip(names, cms.tolist()):
            f.write(f"{name},{int(m[0][0])},{int(m[0][1])},{int(m[1][0])},{int(m[1][1])}\n")
    return path
