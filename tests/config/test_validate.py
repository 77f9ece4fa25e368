"""Every config composes; bad choices fail fast with a message naming the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, compose_train
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from fuselab.config.validate import validate_train_config
from fuselab.errors import ConfigError

GROUPS = [
    "data",
    "fusion",
    "rnn",
    "trainer",
    "logger",
    "callbacks",
    "debug",
    "experiment",
    "model/optimizer",
    "model/scheduler",
]


def group_values(group: str) -> list[str]:
    return sorted(p.stem for p in (REPO / "conf" / group).glob("*.yaml") if not p.stem.startswith("_"))


@pytest.mark.parametrize("group,value", [(g, v) for g in GROUPS for v in group_values(g)])
def test_every_group_value_composes_and_validates(group: str, value: str, tmp_path: Path):
    cfg = compose_train([f"{group}={value}"], output_dir=tmp_path)
    if group == "trainer" and value in ("gpu", "ddp"):
        pytest.skip("needs a GPU to validate; composing it is what this test checks")
    validate_train_config(cfg)


@pytest.mark.parametrize(
    "override",
    [
        "hydra/launcher=basic",
        "hydra/launcher=joblib",
        "hydra/launcher=submitit_local",
        "hydra/launcher=slurm",
        "hparams_search=synthetic_optuna",
    ],
)
def test_launchers_and_searches_compose(override: str):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="fuselab.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=[override], return_hydra_config=True)
    if "slurm" in override:  # CPU defaults; a GPU cluster sets gpus_per_node and tasks_per_node alike
        assert cfg.hydra.launcher.tasks_per_node == 1 and cfg.hydra.launcher.gpus_per_node is None
        assert cfg.hydra.launcher.submitit_folder.endswith("/.submitit/%j")
    if "optuna" in override:
        assert "model.optimizer.lr" in cfg.hydra.sweeper.params


def test_eval_config_composes(tmp_path: Path):
    cfg = compose_train(["ckpt_path=x.ckpt"], output_dir=tmp_path, config_name="eval")
    assert cfg.split == "test" and list(cfg.drop) == []


def test_unknown_group_value_lists_the_valid_ones():
    with pytest.raises(ConfigCompositionException) as err:
        compose_train(["fusion=nope"])
    assert "early" in str(err.value.__cause__ or err.value) or "Available options" in str(err.value)


def test_unknown_key_fails():
    with pytest.raises((ConfigCompositionException, ConfigKeyError, ConfigAttributeError)):
        compose_train(["rnn.hiden_size=3"])


@pytest.mark.parametrize(
    "override,needle",
    [
        ("rnn.hidden_size=abc", "rnn.hidden_size='abc' is invalid: expected a positive integer"),
        ("rnn.pooling=median", "one of ['last', 'mean', 'max', 'attention']"),
        ("rnn.dropout=1.5", "rnn.dropout=1.5 is invalid"),
        ("trainer.precision=16-mixed", "Use trainer.precision=bf16-mixed on CPU"),
        ("trainer.precision=8", "trainer.precision=8 is not one of"),
        ("data.batch_size=0", "data.batch_size=0 is invalid"),
    ],
)
def test_wrong_values_name_the_fix(override: str, needle: str, tmp_path: Path):
    cfg = compose_train([override, "trainer=cpu"] if "precision" in override else [override], output_dir=tmp_path)
    with pytest.raises(ConfigError) as err:
        validate_train_config(cfg)
    assert needle in str(err.value)


def test_a_model_upload_from_an_offline_wandb_run_is_refused_with_the_fix(tmp_path: Path):
    """Lightning's WandbLogger refuses log_model on an offline run, and the run would go on
    without wandb: refused before training instead."""
    cfg = compose_train(["logger=wandb", "logger.wandb.log_model=true"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"log_model=True needs an online run .*logger.wandb.offline=false"):
        validate_train_config(cfg)
    validate_train_config(compose_train(["logger=wandb", "logger.wandb.log_model=true", "logger.wandb.offline=false"]))
