"""The recipes (experiment=recipe_*) compose into what they claim, and train."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FAST, REPO, SMALL_DATA, compose_train

from fuselab.config.validate import validate_train_config
from fuselab.runs.job import train_job

RECIPES = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("recipe_*.yaml"))
CLAIMS = {
    "recipe_text_image": {
        "fusion": "FeatureFusion",
        "cell": "lstm",
        "optimizer": "Adam",
        "modalities": ["tokens", "image"],
    },
    "recipe_image_state_regression": {
        "fusion": "ConditionedFusion",
        "cell": "gru",
        "optimizer": "AdamW",
        "modalities": ["signal", "image"],
    },
    "recipe_three_modality_late": {"fusion": "LateFusion", "cell": "lstm", "optimizer": "AdamW", "modalities": None},
    "recipe_attention_sgd": {"fusion": "FeatureFusion", "cell": "gru", "optimizer": "SGD", "modalities": None},
    # trained in tests/data/test_video.py (it needs the shared MNIST and FSDD files)
    "recipe_cnn_lstm": {"fusion": "EarlyFusion", "cell": "lstm", "optimizer": "Adam", "modalities": None},
}


def test_every_recipe_is_listed_here():
    assert RECIPES == sorted(CLAIMS)


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_composes_into_what_it_claims(name: str):
    cfg = compose_train([f"experiment={name}"])
    validate_train_config(cfg)
    claim = CLAIMS[name]
    assert cfg.fusion._target_.endswith(claim["fusion"]) and cfg.rnn.cell == claim["cell"]
    assert cfg.model.optimizer._target_ == f"torch.optim.{claim['optimizer']}"
    modalities = cfg.data.modalities
    assert (list(modalities) if modalities is not None else None) == claim["modalities"]
    if name == "recipe_attention_sgd":
        assert cfg.fusion.operator == "attention" and cfg.model.optimizer.nesterov is True
    if name == "recipe_image_state_regression":
        assert cfg.data.regression and cfg.model.loss.regression == "mse" and cfg.fusion.mode == "init"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["recipe_image_state_regression", "recipe_attention_sgd"])
def test_recipe_trains(name: str, tmp_path: Path):
    summary = train_job(compose_train([f"experiment={name}", *SMALL_DATA, *FAST], output_dir=tmp_path))
    assert summary["status"] == "completed"
    key = "test/mse" if name == "recipe_image_state_regression" else "test/acc"
    assert key in summary["metrics"]
