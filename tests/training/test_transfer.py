"""model.init_from (weights from another run, by name and shape) and model.freeze."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import FAST, compose_train

from fuselab.config.validate import validate_train_config
from fuselab.errors import ConfigError
from fuselab.runs.job import train_job
from fuselab.training.transfer import freeze, frozen_norms, init_from

DATA = ["data.train_size=96", "data.val_size=32", "data.test_size=32", "data.batch_size=16"]


def weights(ckpt: str | Path) -> dict[str, torch.Tensor]:
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}


@pytest.fixture(scope="module")
def source_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("source") / "run"
    summary = train_job(compose_train([*DATA, *FAST, "seed=1"], output_dir=out))
    assert summary["status"] == "completed"
    return out


def test_init_from_and_freeze_change_exactly_the_named_parameters(source_run: Path, tmp_path: Path):
    src = weights(json.loads((source_run / "summary.json").read_text())["best_checkpoint"])
    # another cell size for the image encoder's projection: that tensor cannot be copied
    overrides = [
        *DATA,
        *FAST,
        "seed=2",
        "model.encoders.modalities={image: {out_dim: 48}}",
        f"model.init_from={source_run}",
        "model.freeze=[body.encoders.signal]",
    ]
    summary = train_job(compose_train(overrides, output_dir=tmp_path / "run"))
    assert summary["status"] == "completed"
    t = summary["transfer"]
    assert any(s.startswith("body.encoders.image.net.8.weight") for s in t["other_shape"])
    assert "head.net.0.weight" in " ".join(t["other_shape"])  # the head's input width changed too
    after = weights(summary["best_checkpoint"])
    signal = [k for k in after if k.startswith("body.encoders.signal.")]
    assert t["frozen"] == signal and t["frozen_parameters"] == sum(after[k].numel() for k in signal)
    assert summary["num_parameters"] - summary["trainable_parameters"] == t["frozen_parameters"]
    for k in signal:  # loaded, then never trained
        assert torch.equal(after[k], src[k]), k
    # loaded but trained: moved away from the source
    assert not torch.equal(
        after["body.encoders.tokens.rnn.rnn.weight_hh_l0"], src["body.encoders.tokens.rnn.rnn.weight_hh_l0"]
    )


def test_init_include_limits_the_copy_and_mismatches_are_listed(source_run: Path):
    from fuselab.models.build import build_model
    from fuselab.training.build import build_datamodule, describe_data

    cfg = compose_train([*DATA, "rnn.hidden_size=32"])
    model = build_model(cfg, describe_data(build_datamodule(cfg.data)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = init_from(model, source_run, include=["body.encoders.image"])
    src = weights(json.loads((source_run / "summary.json").read_text())["best_checkpoint"])
    copied = [k for k in before if k.startswith("body.encoders.image.")]
    assert report["initialised"] == len(copied)
    for k, v in model.state_dict().items():
        assert torch.equal(v, src[k] if k in copied else before[k]), k
    # without include, the recurrent weights of another hidden size are listed, not copied
    report = init_from(model, source_run)
    assert any(
        s.startswith("body.encoders.signal.rnn.rnn.weight_hh_l0: checkpoint (192, 64), model (96, 32)")
        for s in report["other_shape"]
    )


def test_frozen_batch_norm_keeps_its_statistics():
    from fuselab.data.specs import ModalitySpec
    from fuselab.models.encoders import ImageEncoder

    enc = ImageEncoder(ModalitySpec("image", "image", (1, 8, 8)), 4, channels=[3], norm="batch")
    freeze(enc, ["net.1"])
    assert frozen_norms(enc) == [enc.net[1]]


def test_bad_transfer_settings_fail_before_training(source_run: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match=r"model.init_from=.*nowhere does not exist"):
        validate_train_config(compose_train([f"model.init_from={tmp_path}/nowhere"]))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="is a directory without a checkpoint"):
        validate_train_config(compose_train([f"model.init_from={empty}"]))
    with pytest.raises(ConfigError, match=r"model.freeze='body' is invalid: expected a list"):
        validate_train_config(compose_train(["model.freeze=body"]))
    with pytest.raises(
        ConfigError, match=r"model.freeze: 'encoders.sgnal' names no parameter of this model; its parts"
    ):
        train_job(compose_train([*DATA, *FAST, "model.freeze=[encoders.sgnal]"], output_dir=tmp_path / "run"))
    assert not (tmp_path / "run" / "checkpoints").exists()
