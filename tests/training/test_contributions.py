"""contributions=true: subset scores, the prior of the empty subset, Shapley values and
interactions of a trained model, where they are written, and what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SMALL_DATA, compose_train
from helpers import wandb_records

from fuselab.data.specs import TargetSpec
from fuselab.errors import ConfigError
from fuselab.training.contributions import contributions, prior_scores, subset_scores, summary_metrics

MULTICLASS = TargetSpec("multiclass", 3)
GENERATION = TargetSpec("generation", 5, vocabulary=("<pad>", "<bos>", "<eos>", "<unk>", "one"))


def test_the_empty_subset_is_the_train_prior():
    train, test = np.array([0, 0, 0, 1, 2, 2]), np.array([0, 1, 1, 2])
    prior = prior_scores(MULTICLASS, train, test, None)
    assert prior["acc"] == 0.25  # it always guesses class 0, the most frequent in train
    p = np.array([4, 2, 3]) / 9  # add-one frequencies
    assert prior["log_likelihood"] == pytest.approx(np.log(p[test]).mean())
    assert prior["per_class_acc"] == {"0": 1.0, "1": 0.0, "2": 0.0}
    reg = prior_scores(TargetSpec("regression", 1), np.array([1.0, 2.0, 10.0]), np.array([2.0, 4.0]), None)
    assert reg == {"mae": 1.0}  # the median 2.0
    assert prior_scores(GENERATION, np.zeros(0), np.zeros(0), "cer") == {"cer": 1.0}


def test_subset_scores_of_a_multiclass_output():
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [5.0, 0, 0], [0, 0, 5.0]])
    y = torch.tensor([0, 1, 1, 2])
    s = subset_scores(MULTICLASS, logits, y)
    assert s["acc"] == 0.75 and s["per_class_acc"] == {"0": 1.0, "1": 0.5, "2": 1.0}
    assert s["log_likelihood"] == pytest.approx(float(torch.log_softmax(logits, -1)[range(4), y].mean()))


def test_values_are_gains_and_sum_to_the_gain_over_the_prior():
    players = ["a", "b"]
    f = frozenset
    scores = {
        f(): {"mae": 2.0},
        f("a"): {"mae": 1.0},
        f("b"): {"mae": 1.5},
        f("ab"): {"mae": 0.2},
    }
    r = contributions(scores, players)
    # the game is the error's reduction from the prior: a 1.0, b 0.5, both 1.8
    assert r["shapley"]["mae"] == pytest.approx({"a": (1.0 + 1.3) / 2, "b": (0.5 + 0.8) / 2})
    assert r["interactions"]["mae"] == pytest.approx({"a+b": 1.8 - 1.0 - 0.5})
    assert r["gain_over_prior"]["mae"] == pytest.approx(1.8)
    assert r["subsets"]["mae"] == {"none": 2.0, "a": 1.0, "b": 1.5, "a+b": 0.2}


def test_per_class_values_are_named_by_the_class_names():
    f = frozenset
    acc = {f(): 0.5, f("a"): 0.7, f("b"): 0.6, f("ab"): 0.9}
    per_class = {f(): {"0": 1.0, "1": 0.0}, f("a"): {"0": 0.9, "1": 0.5}, f("b"): {"0": 0.6, "1": 0.6}}
    per_class[f("ab")] = {"0": 1.0, "1": 0.8}
    scores = {s: {"acc": acc[s], "per_class_acc": per_class[s]} for s in acc}
    r = contributions(scores, ["a", "b"], names=("cat", "dog"))
    assert set(r["per_class"]) == {"cat", "dog"}
    assert sum(r["per_class"]["dog"].values()) == pytest.approx(0.8)


def test_too_many_modalities_and_test_false_are_refused_before_training(tmp_path: Path):
    from fuselab.config.validate import validate_train_config
    from fuselab.training.contributions import check_modalities

    with pytest.raises(ConfigError, match=r"9 modalities are 2\^9 = 512 test passes, over the limit of 8"):
        check_modalities([f"m{i}" for i in range(9)])
    cfg = compose_train(["contributions=true", "test=false"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="contributions=true scores every modality subset on the test split"):
        validate_train_config(cfg)
    with pytest.raises(ConfigError, match=r"contributions='yes' is invalid: expected true or false"):
        validate_train_config(compose_train(["contributions=yes"], output_dir=tmp_path))


@pytest.mark.slow
def test_a_trained_model_gives_the_deciding_modality_the_credit(tmp_path: Path, monkeypatch):
    """interaction=unique: signal alone carries the label; with modality dropout the model has
    seen every subset. Every subset is scored on one prepared test split."""
    import pytorch_lightning as pl

    from fuselab.data.datasets.synthetic import SyntheticDataModule
    from fuselab.runs.job import eval_job, train_job

    builds, tests = [], []
    build, test = SyntheticDataModule.build, pl.Trainer.test
    monkeypatch.setattr(SyntheticDataModule, "build", lambda self, scratch: builds.append(1) or build(self, scratch))
    monkeypatch.setattr(pl.Trainer, "test", lambda self, *a, **k: tests.append(1) or test(self, *a, **k))
    overrides = [
        "data.interaction=unique",
        "data.seed=7",
        *SMALL_DATA,
        "data.train_size=768",
        "data.test_size=256",
        "model.modality_dropout=0.3",
        "trainer.max_epochs=5",
        "model.optimizer.lr=0.01",
        "logger=wandb",
        "contributions=true",
    ]
    summary = train_job(compose_train(overrides, output_dir=tmp_path / "run"))
    state, _ = wandb_records(tmp_path / "run")  # the dashboard has the picture and the values
    assert state["summary"]["test/contributions"]["_type"] == "images/separated"
    assert state["summary"]["final/test/shapley/acc/signal"] == pytest.approx(
        summary["metrics"]["test/shapley/acc/signal"]
    )
    assert summary["status"] == "completed" and len(builds) == 1
    assert len(tests) == 1 + 7  # the run's test, then the 2^3 - 1 non-empty subsets
    report = json.loads((tmp_path / "run" / "contributions.json").read_text())
    assert (tmp_path / "run" / "contributions.png").stat().st_size > 0
    phi, gain = report["shapley"]["acc"], report["gain_over_prior"]["acc"]
    assert sum(phi.values()) == pytest.approx(gain)
    assert report["subsets"]["acc"]["signal+tokens+image"] == pytest.approx(summary["metrics"]["test/acc"])
    assert phi["signal"] > 0.8 * gain and abs(phi["tokens"]) < 0.05 and abs(phi["image"]) < 0.05
    assert "note" not in report  # trained with modality dropout
    assert summary["metrics"]["test/shapley/acc/signal"] == pytest.approx(phi["signal"])
    assert summary["contributions"]["interactions"]["acc"].keys() == {"signal+tokens", "signal+image", "tokens+image"}

    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    overrides = [f"ckpt_path={ckpt}", "drop=[image]", "contributions=true"]
    cfg = compose_train(overrides, output_dir=tmp_path / "eval", config_name="eval")
    evaluated = eval_job(cfg)
    assert evaluated["contributions"]["modalities"] == ["signal", "tokens"]
    assert set(summary_metrics(evaluated["contributions"])) <= set(evaluated["metrics"])
