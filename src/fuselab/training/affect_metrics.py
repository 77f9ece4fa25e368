"""Affect metrics for sentiment regression in [-3, 3] (CMU-MOSI/MOSEI), as the papers compute
them (MulT, Tsai et al. 2019; MMSA, Yu et al.):

- ``mae``; ``corr`` (Pearson)
- ``acc7``: round(clip(x, -3, 3)) agrees; ``acc5``: the same with clip to [-2, 2]
- ``acc2``, ``f1``: positive vs negative over the samples whose label is not 0 (label > 0 vs
  prediction > 0; MulT and MultiBench report these)
- ``acc2_has0``, ``f1_has0``: label >= 0 vs prediction >= 0 over all samples (MMSA reports both)

F1 is weighted by class support (scikit-learn's ``average="weighted"``).
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.functional.classification import multiclass_f1_score
from torchmetrics.utilities import dim_zero_cat


def weighted_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """F1 of a binary decision weighted by class support (scikit-learn's ``average="weighted"``)."""
    if len(truth) == 0:
        return float("nan")
    score = multiclass_f1_score(
        torch.as_tensor(pred, dtype=torch.long),
        torch.as_tensor(truth, dtype=torch.long),
        num_classes=2,
        average="weighted",
    )
    return float(score)


def affect_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    pred, truth = np.asarray(pred, dtype=np.float64).ravel(), np.asarray(truth, dtype=np.float64).ravel()
    nonzero = truth != 0
    corr = (
        float(np.corrcoef(pred, truth)[0, 1]) if len(pred) > 1 and pred.std() > 0 and truth.std() > 0 else float("nan")
    )
    return {
        "mae": float(np.abs(pred - truth).mean()),
        "corr": corr,
        "acc7": float((np.round(np.clip(pred, -3, 3)) == np.round(np.clip(truth, -3, 3))).mean()),
        "acc5": float((np.round(np.clip(pred, -2, 2)) == np.round(np.clip(truth, -2, 2))).mean()),
        "acc2": float(((pred[nonzero] > 0) == (truth[nonzero] > 0)).mean()) if nonzero.any() else float("nan"),
        "f1": weighted_f1(truth[nonzero] > 0, pred[nonzero] > 0),
        "acc2_has0": float(((pred >= 0) == (truth >= 0)).mean()),
        "f1_has0": weighted_f1(truth >= 0, pred >= 0),
    }


class AffectMetrics(Metric):
    """Collects predictions and labels over an epoch; ``compute`` returns :func:`affect_scores`."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.preds.append(preds.detach().float().reshape(-1))
        self.target.append(target.detach().float().reshape(-1))

    def compute(self) -> dict[str, torch.Tensor]:
        pred = dim_zero_cat(self.preds).cpu().numpy()
        truth = dim_zero_cat(self.target).cpu().numpy()
        return {k: torch.tensor(v) for k, v in affect_scores(pred, truth).items()}
