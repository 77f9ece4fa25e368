"""The training loss of each target kind."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fuselab.data.specs import TargetSpec
from fuselab.errors import ConfigError

REGRESSION_LOSSES = ("l1", "mse")


class TargetLoss:
    """``(logits (B, O), target) -> scalar``: cross-entropy for ``multiclass`` (target (B,) class
    ids, optional label smoothing), binary cross-entropy on logits for ``multilabel`` (target
    (B, O) in {0, 1}), L1 or MSE for ``regression`` (target (B, O) or (B,)). Computed in fp32
    whatever the autocast dtype of the logits."""

    def __init__(self, target: TargetSpec, label_smoothing: float = 0.0, regression: str = "l1") -> None:
        if regression not in REGRESSION_LOSSES:
            raise ConfigError(f"model.loss.regression={regression!r} is not one of {list(REGRESSION_LOSSES)}")
        self.kind = target.kind
        self.label_smoothing = float(label_smoothing)
        self.regression = F.l1_loss if regression == "l1" else F.mse_loss

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.kind == "multiclass":
            return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)
        if self.kind == "multilabel":
            return F.binary_cross_entropy_with_logits(logits, target.float())
        return self.regression(logits, target.float().reshape(logits.shape))
