"""A loss a user adds without touching fuselab (tests/training/test_custom_loss.py): one class
here, one yaml in tests/training/local_conf/model/loss/."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fuselab.data.specs import TargetSpec
from fuselab.training.losses import TargetLoss


class ScaledLoss(TargetLoss):
    """The target kind's loss times ``scale`` (aux heads and class weights as in TargetLoss)."""

    def __init__(
        self,
        target: TargetSpec,
        scale: float = 1.0,
        label_smoothing: float = 0.0,
        class_weights: Sequence[float] | None = None,
        aux_weight: float = 0.0,
    ) -> None:
        super().__init__(target, label_smoothing=label_smoothing, class_weights=class_weights, aux_weight=aux_weight)
        self.scale = float(scale)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.scale * super().forward(logits, target)
