"""Losses and metrics of each target kind against values computed by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassConfusionMatrix

from fuselab.data.specs import TargetSpec
from fuselab.errors import ConfigError
from fuselab.training.affect_metrics import weighted_f1
from fuselab.training.losses import TargetLoss
from fuselab.training.metrics import monitor_for, predictions, save_confusion_matrix


def test_multiclass_loss_is_cross_entropy_with_label_smoothing():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    target = torch.tensor([0, 2])
    logp = torch.log_softmax(logits, -1)
    plain = -(logp[0, 0] + logp[1, 2]) / 2
    assert TargetLoss(TargetSpec("multiclass", 3))(logits, target) == pytest.approx(float(plain))
    eps = 0.3
    smooth = -((1 - eps) * (logp[0, 0] + logp[1, 2]) + eps / 3 * logp.sum()) / 2
    assert TargetLoss(TargetSpec("multiclass", 3), label_smoothing=eps)(logits, target) == pytest.approx(float(smooth))


def test_regression_losses_and_multilabel_bce():
    pred, y = torch.tensor([[1.0], [3.0]]), torch.tensor([0.0, 1.0])
    assert TargetLoss(TargetSpec("regression", 1), regression="l1")(pred, y) == pytest.approx(1.5)
    assert TargetLoss(TargetSpec("regression", 1), regression="mse")(pred, y) == pytest.approx(2.5)
    logits, labels = torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.0]])
    by_hand = (math.log(2) + math.log(1 + math.exp(2))) / 2
    assert TargetLoss(TargetSpec("multilabel", 2))(logits, labels) == pytest.approx(by_hand, rel=1e-6)
    with pytest.raises(ConfigError, match="model.loss.regression='huber' is not one of"):
        TargetLoss(TargetSpec("regression", 1), regression="huber")


def test_weighted_f1_as_scikit_learn_defines_it():
    truth = np.array([0, 1, 0, 0], dtype=bool)
    pred = np.array([0, 1, 1, 0], dtype=bool)
    # class 0: support 3, tp 2, fp 0, fn 1 -> 0.8; class 1: support 1, tp 1, fp 1 -> 2/3
    assert weighted_f1(truth, pred) == pytest.approx((0.8 * 3 + 2 / 3) / 4)
    assert weighted_f1(np.ones(3, bool), np.ones(3, bool)) == 1.0
    assert math.isnan(weighted_f1(np.array([], bool), np.array([], bool)))


def test_predictions_and_monitor_per_kind():
    logits = torch.tensor([[0.1, 0.7], [0.9, -1.0]])
    assert predictions(TargetSpec("multiclass", 2), logits).tolist() == [1, 0]
    assert torch.allclose(predictions(TargetSpec("multilabel", 2), logits), torch.sigmoid(logits))
    assert monitor_for(TargetSpec("regression", 1)) == ("val/mae", "min")


def test_confusion_matrix_files(tmp_path: Path):
    cm = MulticlassConfusionMatrix(num_classes=3)
    cm.update(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]))
    png = save_confusion_matrix(cm, TargetSpec("multiclass", 3, ("a", "b", "c")), tmp_path)
    rows = (tmp_path / "confusion_matrix.csv").read_text().splitlines()
    assert rows == ["true\\predicted,a,b,c", "a,1,0,0", "b,0,1,0", "c,0,1,1"]
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_epoch_means_are_weighted_by_batch_size_and_forgotten_once_read():
    from fuselab.training.module import EpochMeans

    means = EpochMeans()
    means.add("train/loss", torch.tensor(1.0), 3)
    means.add("train/loss", torch.tensor(3.0), 1)
    means.add("val/loss", torch.tensor(2.0), 5)
    assert means.pop("train") == {"train/loss": pytest.approx(1.5)}
    assert means.pop("train") == {} and list(means.pop("val")) == ["val/loss"]
