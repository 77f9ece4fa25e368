"""Adding a fusion operator is one class and one yaml file, nothing in fuselab changes: the
worked example of docs/architecture.md, run end to end."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from conftest import FAST, SMALL_DATA, compose_train

from fuselab.errors import ConfigError
from fuselab.runs.job import train_job

pytestmark = pytest.mark.slow  # each test trains a run

HERE = Path(__file__).parent
LOCAL = [f"hydra.searchpath=[file://{HERE / 'local_conf'}]", "fusion=max"]


@pytest.fixture(autouse=True)
def importable(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))  # the user's own package, importable


def test_a_new_operator_trains_with_one_class_and_one_yaml(tmp_path: Path):
    summary = train_job(compose_train([*LOCAL, *SMALL_DATA, *FAST], output_dir=tmp_path))
    assert summary["status"] == "completed" and 0 <= summary["metrics"]["test/acc"] <= 1
    ckpt = torch.load(tmp_path / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["config"]["fusion"]["operator"]["_target_"] == "max_fusion.MaxFusion"
    names = set(ckpt["state_dict"])
    assert {f"model.body.fuse.proj.{m}.weight" for m in ("signal", "tokens", "image")} <= names
    assert ckpt["state_dict"]["model.body.fuse.proj.signal.weight"].shape[0] == 24  # the yaml's dim


def test_the_new_operator_serves_hybrid_fusion_and_its_keys_are_checked(tmp_path: Path):
    from fuselab.config.validate import validate_train_config

    hybrid = compose_train(
        ["fusion=hybrid", "fusion.operator={_target_: max_fusion.MaxFusion, dim: 8}", *SMALL_DATA, *FAST],
        output_dir=tmp_path,
    )
    validate_train_config(hybrid)
    assert train_job(hybrid)["status"] == "completed"
    wrong = compose_train([*LOCAL, "+fusion.operator.width=3", *SMALL_DATA, *FAST], output_dir=tmp_path / "w")
    with pytest.raises(ConfigError, match=r"fusion.operator.width: MaxFusion .* takes no setting 'width'"):
        validate_train_config(wrong)


def test_an_evaluated_checkpoint_builds_the_operator_only_when_allowed(tmp_path: Path):
    """A checkpoint naming an operator outside fuselab is someone's code: refused by fuselab-eval
    until its package is allowed (allow_targets=[max_fusion])."""
    from fuselab.runs.job import eval_job

    run = tmp_path / "run"
    train_job(compose_train([*LOCAL, *SMALL_DATA, *FAST], output_dir=run))
    ckpt = run / "checkpoints" / "best.ckpt"
    refused = compose_train([f"ckpt_path={ckpt}"], output_dir=tmp_path / "eval1", config_name="eval")
    with pytest.raises(ConfigError, match=r"fusion.operator._target_.*max_fusion.MaxFusion"):
        eval_job(refused)
    allowed = compose_train(
        [f"ckpt_path={ckpt}", "allow_targets=[max_fusion]"], output_dir=tmp_path / "eval2", config_name="eval"
    )
    assert eval_job(allowed)["status"] == "completed"
    assert "max_fusion" in sys.modules
