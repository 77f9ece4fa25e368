"""model.loss is one node: a loss of your own is one class and one yaml (model/loss=<name>), and
a checkpoint whose stored loss node predates the node's _target_ still evaluates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import FAST, SMALL_DATA, compose_train

from fuselab.errors import ConfigError
from fuselab.runs.job import eval_job, train_job

HERE = Path(__file__).parent
LOCAL = [f"hydra.searchpath=[file://{HERE / 'local_conf'}]", "model/loss=scaled"]


@pytest.fixture(autouse=True)
def importable(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def test_a_new_loss_is_one_class_and_one_yaml(tmp_path: Path):
    from fuselab.config.validate import validate_train_config
    from fuselab.data.specs import DataDescription, ModalitySpec, TargetSpec
    from fuselab.training.build import build_loss

    cfg = compose_train([*LOCAL, *SMALL_DATA, *FAST], output_dir=tmp_path)
    validate_train_config(cfg)
    data = DataDescription({"v": ModalitySpec("v", "vector", (2,))}, TargetSpec("multiclass", 3))
    loss = build_loss(cfg.model.loss, data, None)
    assert type(loss).__name__ == "ScaledLoss" and loss.scale == 3.0
    logits, target = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    torch.testing.assert_close(loss(logits, target), 3.0 * torch.nn.functional.cross_entropy(logits, target))
    bad = compose_train([*LOCAL, "+model.loss.sharpness=2", *SMALL_DATA, *FAST], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"model.loss.sharpness: ScaledLoss .* takes no setting"):
        validate_train_config(bad)


@pytest.mark.slow
def test_the_new_loss_trains_and_a_legacy_checkpoint_still_evaluates(tmp_path: Path):
    summary = train_job(compose_train([*LOCAL, *SMALL_DATA, *FAST], output_dir=tmp_path / "run"))
    assert summary["status"] == "completed"
    ckpt_path = tmp_path / "run" / "checkpoints" / "best.ckpt"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["config"]["model"]["loss"]["_target_"] == "scaled_loss.ScaledLoss"
    # a checkpoint of fuselab 0.2, whose model.loss had no _target_: rebuilt as TargetLoss
    legacy = {k: v for k, v in ckpt["hyper_parameters"]["config"]["model"]["loss"].items() if not k.startswith("_")}
    legacy.pop("scale")
    ckpt["hyper_parameters"]["config"]["model"]["loss"] = {**legacy, "regression": "l1", "label_smoothing": 0.0}
    # and whose data modules lived directly in fuselab.data
    assert ckpt["hyper_parameters"]["config"]["data"]["_target_"].startswith("fuselab.data.datasets.synthetic.")
    ckpt["hyper_parameters"]["config"]["data"]["_target_"] = "fuselab.data.synthetic.SyntheticDataModule"
    torch.save(ckpt, tmp_path / "legacy.ckpt")
    cfg = compose_train([f"ckpt_path={tmp_path / 'legacy.ckpt'}"], output_dir=tmp_path / "eval", config_name="eval")
    assert eval_job(cfg)["status"] == "completed"
