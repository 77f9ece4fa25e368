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


def test_precision_and_recall_against_hand_computed_values():
    from fuselab.training.metrics import build_metrics, multiclass_counts, per_class_scores

    target = TargetSpec("multiclass", 3, ("a", "b", "c"))
    preds, truth = torch.tensor([0, 1, 1, 2, 2, 2]), torch.tensor([0, 1, 2, 2, 2, 0])
    values = build_metrics(target)(preds, truth)
    # per class: a tp1 fp0 fn1; b tp1 fp1 fn0; c tp2 fp1 fn1
    precision = {"a": 1.0, "b": 0.5, "c": 2 / 3}
    recall = {"a": 0.5, "b": 1.0, "c": 2 / 3}
    assert float(values["precision_macro"]) == pytest.approx(sum(precision.values()) / 3)
    assert float(values["recall_macro"]) == pytest.approx(sum(recall.values()) / 3)
    assert float(values["precision_micro"]) == pytest.approx(4 / 6) == float(values["recall_micro"])
    cm = torch.zeros(3, 3, dtype=torch.long)
    for t, p in zip(truth.tolist(), preds.tolist()):
        cm[t, p] += 1
    table = per_class_scores(multiclass_counts(cm), ["a", "b", "c"])
    assert {k: v["precision"] for k, v in table.items()} == pytest.approx(precision)
    assert {k: v["recall"] for k, v in table.items()} == pytest.approx(recall)
    assert [v["support"] for v in table.values()] == [2, 1, 3]


def test_multilabel_precision_recall_and_per_label_counts():
    from fuselab.training.metrics import build_metrics, multilabel_counts, per_class_scores

    target = TargetSpec("multilabel", 2)
    probs = torch.tensor([[0.9, 0.2], [0.8, 0.7], [0.1, 0.6]])
    truth = torch.tensor([[1, 0], [0, 1], [1, 1]])
    values = build_metrics(target, ["precision_micro", "recall_micro"])(probs, truth)
    # predicted positives: (0,0) (1,0) (1,1) (2,1) -> tp 3 of 4; actual positives 4 -> recall 3/4
    assert float(values["precision_micro"]) == pytest.approx(0.75) and float(values["recall_micro"]) == pytest.approx(
        0.75
    )
    cms = torch.tensor([[[0, 1], [1, 1]], [[1, 0], [0, 2]]])  # label 0: tn0 fp1 fn1 tp1; label 1: tn1 tp2
    table = per_class_scores(multilabel_counts(cms), ["x", "y"])
    assert table["x"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert table["y"]["precision"] == 1.0 and table["y"]["support"] == 2


def test_the_metric_list_and_the_monitor_are_settings():
    from fuselab.training.metrics import build_metrics

    target = TargetSpec("multiclass", 3)
    assert sorted(build_metrics(target, ["recall_macro", "acc"])) == ["acc", "recall_macro"]
    with pytest.raises(ConfigError, match=r"model.metrics=\['recal'\]: a multiclass target offers"):
        build_metrics(target, ["recal"])
    assert monitor_for(target, "val/recall_macro", ["recall_macro"]) == ("val/recall_macro", "max")
    assert monitor_for(target, "val/loss") == ("val/loss", "min")
    assert monitor_for(target, None, ["recall_macro"]) == ("val/recall_macro", "max")  # val/acc is not logged
    with pytest.raises(ConfigError, match="model.monitor=val/auc is not a validation metric this run logs"):
        monitor_for(target, "val/auc")


def test_class_weights_change_the_loss_as_computed_by_hand():
    from fuselab.training.losses import balanced_class_weights

    target = TargetSpec("multiclass", 2)
    logits, y = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.tensor([0, 1, 1])
    logp = torch.log_softmax(logits, -1)
    w = [1.0, 3.0]
    by_hand = -(w[0] * logp[0, 0] + w[1] * logp[1, 1] + w[1] * logp[2, 1]) / (w[0] + 2 * w[1])
    assert TargetLoss(target, class_weights=w)(logits, y) == pytest.approx(float(by_hand))
    assert balanced_class_weights(np.array([0, 0, 0, 1]), target) == pytest.approx([4 / 6, 4 / 2])
    assert balanced_class_weights(np.array([[1, 0], [1, 1], [1, 0]]), TargetSpec("multilabel", 2)) == [1.0, 2.0]
    with pytest.raises(ConfigError, match="needs 2 positive ones"):
        TargetLoss(target, class_weights=[1.0])


def test_the_balanced_sampler_draws_classes_alike_and_repeats_per_epoch():
    from fuselab.data.samplers import EpochBalancedSampler

    labels = np.array([0] * 90 + [1] * 10)
    sampler = EpochBalancedSampler(labels, seed=3)
    draws = [list(sampler) for _ in range(2)]
    assert draws[0] == draws[1] and len(draws[0]) == 100
    share = np.mean(labels[np.array(draws[0] * 20)] == 1)
    assert 0.35 < share < 0.65  # 10% of the samples, about half of the draws
    sampler.set_epoch(1)
    assert list(sampler) != draws[0]


def test_nesterov_reaches_torch_sgd():
    from conftest import compose_train
    from hydra.utils import instantiate

    cfg = compose_train(["model/optimizer=sgd", "model.optimizer.nesterov=true", "model.optimizer.momentum=0.8"])
    opt = instantiate(cfg.model.optimizer)(params=[torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"] is True and opt.defaults["momentum"] == 0.8
