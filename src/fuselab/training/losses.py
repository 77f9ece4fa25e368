"""The training loss of each target kind, and class weights against imbalance."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fuselab.data.specs import PAD_ID, TargetSpec
from fuselab.errors import ConfigError

REGRESSION_LOSSES = ("l1", "mse")


class TargetLoss(nn.Module):
    """``(logits (B, O), target) -> scalar``: cross-entropy for ``multiclass`` (target (B,) class
    ids, optional label smoothing and per-class weights), binary cross-entropy on logits for
    ``multilabel`` (target (B, O) in {0, 1}; the weights weigh each label's positives), L1 or MSE
    for ``regression`` (target (B, O) or (B,)); for ``generation``, token cross-entropy of
    logits (B, L-1, V) against target[:, 1:] (target (B, L) start..end+padding), padding masked,
    label smoothing optional. Computed in fp32 whatever the autocast dtype.

    ``aux_weight`` weighs the per-modality losses of models that return ``aux_logits`` (late and
    hybrid fusion) in :meth:`total`. ``class_weights`` are resolved ones (``balanced`` is turned
    into numbers from the train split by the builder)."""

    def __init__(
        self,
        target: TargetSpec,
        label_smoothing: float = 0.0,
        regression: str = "l1",
        class_weights: Sequence[float] | None = None,
        aux_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.aux_weight = float(aux_weight)
        if regression not in REGRESSION_LOSSES:
            raise ConfigError(f"model.loss.regression={regression!r} is not one of {list(REGRESSION_LOSSES)}")
        self.kind = target.kind
        self.label_smoothing = float(label_smoothing)
        self.regression = F.l1_loss if regression == "l1" else F.mse_loss
        weight = None
        if class_weights:
            if target.kind == "generation":
                raise ConfigError("model.loss.class_weights weigh classes; a generation target has none (set it null)")
            if target.kind == "regression":
                raise ConfigError("model.loss.class_weights weigh classes; a regression target has none (set it null)")
            if len(class_weights) != target.num_outputs or min(class_weights) <= 0:
                raise ConfigError(
                    f"model.loss.class_weights has {len(class_weights)} values; this target needs "
                    f"{target.num_outputs} positive ones (or class_weights=balanced)"
                )
            weight = torch.tensor([float(w) for w in class_weights])
        # not in the state dict: checkpoints keep their keys, the weights travel in hyperparameters
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.kind == "generation":
            gold = target[:, 1 : 1 + logits.shape[1]]
            return F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                gold.reshape(-1),
                ignore_index=PAD_ID,
                label_smoothing=self.label_smoothing,
            )
        if self.kind == "multiclass":
            return F.cross_entropy(logits, target, weight=self.weight, label_smoothing=self.label_smoothing)
        if self.kind == "multilabel":
            return F.binary_cross_entropy_with_logits(logits, target.float(), pos_weight=self.weight)
        return self.regression(logits, target.float().reshape(logits.shape))

    def total(
        self, logits: torch.Tensor, aux_logits: dict[str, torch.Tensor] | None, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the loss of the fused prediction plus ``aux_weight`` x the mean per-modality loss, that
        mean or None when there is none to add)."""
        loss = self(logits, target)
        if self.aux_weight <= 0 or not aux_logits:
            return loss, None
        aux = torch.stack([self(head, target) for head in aux_logits.values()]).mean()
        return loss + self.aux_weight * aux, aux


def balanced_class_weights(labels: np.ndarray, target: TargetSpec) -> list[float]:
    """Weights from the train split's labels. Multiclass: ``n / (C * n_c)`` per class (scikit-
    learn's "balanced"; a class absent from train gets weight 1). Multilabel: negatives /
    positives per label (BCE's ``pos_weight``; 1 for a label that is never or always on)."""
    if target.kind in ("regression", "generation"):
        raise ConfigError(f"model.loss.class_weights=balanced needs classes; a {target.kind} target has none")
    y = np.asarray(labels)
    if target.kind == "multiclass":
        counts = np.bincount(y.astype(np.int64).ravel(), minlength=target.num_outputs).astype(float)
        weights = np.where(counts > 0, len(y) / (target.num_outputs * np.maximum(counts, 1)), 1.0)
    else:
        y = y.reshape(len(y), -1).astype(bool)
        pos, neg = y.sum(0).astype(float), (~y).sum(0).astype(float)
        weights = np.where((pos > 0) & (neg > 0), neg / np.maximum(pos, 1), 1.0)
    return [float(w) for w in weights]
