"""fuselab-train in-process: every fusion x cell runs, summaries and checkpoints, eval reproduces."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST, SMALL_DATA, compose_train

from fuselab.errors import ConfigError
from fuselab.runs.job import eval_job as evaluate
from fuselab.runs.job import train_job as train

# debug=fast without its "no loggers", for the tests of loggers
FEW_BATCHES = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "callbacks.progress_bar=null",
]


def run(tmp_path: Path, *overrides: str, loggers: bool = False) -> dict:
    speed = FEW_BATCHES if loggers else FAST
    return train(compose_train([*SMALL_DATA, *speed, *overrides], output_dir=tmp_path))


@pytest.mark.parametrize("fusion", ["early", "feature", "late"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "transformer"])
def test_every_fusion_and_cell_trains(tmp_path: Path, fusion: str, cell: str):
    summary = run(tmp_path, f"fusion={fusion}", f"rnn={cell}")
    assert summary["status"] == "completed"
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["status"] == "completed"
    for key in ("val/acc", "val/f1_macro", "test/acc", "test/f1_macro", "test/loss"):
        assert 0 <= on_disk["metrics"][key] <= (100 if key.endswith("loss") else 1), key
    assert Path(on_disk["best_checkpoint"]).is_file() and Path(on_disk["last_checkpoint"]).is_file()
    assert on_disk["wall_time_s"] > 0 and on_disk["modalities"] == ["signal", "tokens", "image"]
    # what decides bit-for-bit reproduction on CPU is recorded with the run
    assert on_disk["torch_threads"] == torch.get_num_threads() >= 1
    assert on_disk["torch_version"] == torch.__version__


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "transformer"])
def test_bf16_mixed_trains_every_cell_on_cpu(tmp_path: Path, cell: str):
    summary = run(tmp_path, "trainer=cpu", "trainer.precision=bf16-mixed", f"rnn={cell}", "fusion=early")
    assert summary["status"] == "completed"
    assert all(v == v for v in summary["metrics"].values())  # no NaN


@pytest.mark.slow  # trains or builds a dataset for over a second
def test_summary_records_the_patience_and_a_run_capped_inside_it_as_not_converged(tmp_path: Path):
    capped = train(
        compose_train(
            [
                *SMALL_DATA,
                *FAST,
                "callbacks=early_stopping",
                "callbacks.early_stopping.patience=5",
                "trainer.max_epochs=3",
            ],
            output_dir=tmp_path / "capped",
        )
    )
    assert capped["patience"] == 5 and capped["stopped_early"] is False and len(capped["history"]["epoch"]) == 3
    assert capped["converged"] is False  # early stopping would have trained on
    plain = run(tmp_path / "plain", "trainer.max_epochs=2")
    assert plain["patience"] is None and plain["stopped_early"] is False
    assert plain["converged"] == (plain["best_epoch"] < 1)


def test_csv_metrics_are_logged_per_stage(tmp_path: Path):
    run(tmp_path, "logger=csv", "trainer.max_epochs=2", loggers=True)
    header = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    for col in ("train/loss_epoch", "train/acc", "val/acc", "val/f1_macro", "test/acc"):
        assert col in header


def test_step_loss_on_logging_steps_and_epoch_means(tmp_path: Path):
    overrides = [
        "trainer.max_epochs=3",
        "trainer.log_every_n_steps=5",
        "fusion=late",
        "fusion.combine=weighted",
        "model.loss.aux_weight=0.5",
    ]
    run(tmp_path, "logger=csv", *overrides, loggers=True)
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows if r.get("train/loss_step")]
    assert steps == [4, 9]  # 3 epochs x 4 batches: the 5th and 10th optimizer steps
    epochs = [r for r in rows if r.get("train/loss_epoch")]
    assert len(epochs) == 3 and all(float(r["train/aux_loss"]) > 0 for r in epochs)
    val = [r for r in rows if r.get("val/loss")]
    assert len(val) == 4  # each epoch, then the best checkpoint validated again
    weights = [sum(float(r[f"val/fusion_weight/{m}"]) for m in ("signal", "tokens", "image")) for r in val]
    assert weights == pytest.approx([1.0] * 4, abs=1e-5)  # softmax weights over the present modalities


def test_monitored_on_macro_recall_with_balanced_classes(tmp_path: Path):
    summary = run(
        tmp_path,
        "model.monitor=val/recall_macro",
        "model.loss.class_weights=balanced",
        "data.balanced_sampler=true",
        "model/optimizer=sgd",
        "model.optimizer.nesterov=true",
    )
    assert summary["status"] == "completed" and summary["monitor"] == "val/recall_macro"
    assert {"test/recall_macro", "test/precision_micro", "val/recall_macro"} <= set(summary["metrics"])
    assert sorted(summary["per_class"]) == ["0", "1", "2", "3"]
    support = sum(row["support"] for row in summary["per_class"].values())
    assert support == 64  # the whole test split (SMALL_DATA), every class counted once
    rows = (tmp_path / "confusion_matrix.csv").read_text().splitlines()
    assert rows[0] == "true\\predicted,0,1,2,3" and len(rows) == 5


def test_eval_reproduces_the_test_metrics(tmp_path: Path):
    summary = run(tmp_path / "train", "trainer.max_epochs=2", "fusion=late")
    eval_cfg = compose_train(
        [f"ckpt_path={summary['best_checkpoint']}"], output_dir=tmp_path / "eval", config_name="eval"
    )
    result = evaluate(eval_cfg)
    for key in ("test/acc", "test/f1_macro", "test/loss"):
        assert result["metrics"][key] == pytest.approx(summary["metrics"][key], abs=1e-6)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_predictions_file_has_a_row_per_test_sample_and_reproduces_the_metrics(tmp_path: Path, fmt: str):
    import pandas as pd

    summary = run(tmp_path / "train", "fusion=late")
    overrides = [f"ckpt_path={summary['best_checkpoint']}", "save_predictions=true", f"predictions_format={fmt}"]
    result = evaluate(compose_train(overrides, output_dir=tmp_path / "eval", config_name="eval"))
    path = tmp_path / "eval" / f"predictions.{fmt}"
    assert result["predictions"] == str(path)
    frame = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)
    assert len(frame) == 64 and list(frame["id"]) == list(range(64))  # SMALL_DATA's test split
    assert (frame["prediction"] == frame["target"]).mean() == pytest.approx(result["metrics"]["test/acc"], abs=1e-6)
    probs = frame[[f"prob_{c}" for c in "0123"]].to_numpy()
    assert np.allclose(probs.sum(1), 1, atol=1e-5) and (probs.argmax(1) == frame["prediction"]).all()
    assert {"prediction_signal", "prediction_tokens", "prediction_image"} <= set(frame.columns)


def test_eval_drops_named_modalities(tmp_path: Path):
    summary = run(tmp_path / "train", "fusion=late")
    overrides = [f"ckpt_path={summary['best_checkpoint']}", "drop=[image,tokens]"]
    result = evaluate(compose_train(overrides, output_dir=tmp_path / "eval", config_name="eval"))
    assert result["dropped"] == ["image", "tokens"]
    with pytest.raises(ConfigError, match="drop=\\['audio'\\]: not modalities of this run"):
        evaluate(compose_train([overrides[0], "drop=[audio]"], output_dir=tmp_path / "e2", config_name="eval"))


def test_eval_refuses_what_is_not_a_fuselab_checkpoint(tmp_path: Path):
    bogus = tmp_path / "x.ckpt"
    torch.save({"state_dict": {}}, bogus)
    with pytest.raises(ConfigError, match="is not a fuselab checkpoint"):
        evaluate(compose_train([f"ckpt_path={bogus}"], output_dir=tmp_path / "e", config_name="eval"))
    truncated = tmp_path / "t.ckpt"
    truncated.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ConfigError, match="not a readable checkpoint"):
        evaluate(compose_train([f"ckpt_path={truncated}"], output_dir=tmp_path / "e", config_name="eval"))
    with pytest.raises(ConfigError, match="does not exist"):
        evaluate(compose_train(["ckpt_path=/no/such.ckpt"], output_dir=tmp_path / "e", config_name="eval"))


def test_wrong_modality_fails_before_training_and_is_recorded(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"It has: \['signal', 'tokens', 'image'\]"):
        run(tmp_path, "data.modalities=[signal,audio]")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "audio" in summary["error"]


def test_modality_subset_trains(tmp_path: Path):
    summary = run(tmp_path, "data.modalities=[image]", "fusion=feature")
    assert summary["status"] == "completed" and summary["modalities"] == ["image"]


@pytest.mark.slow  # trains or builds a dataset for over a second
def test_wandb_logger_runs_offline_with_group_and_tags(tmp_path: Path):
    summary = run(tmp_path, "logger=many", "fusion=late", "rnn=lstm", "tags=[ablation]", loggers=True)
    assert summary["status"] == "completed"
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert runs, "no offline wandb run written"
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*")), "no tensorboard events written"
    from fuselab.training.loggers import run_tags

    tags = run_tags(
        compose_train(["tags=[ablation]"]), {"data": "synthetic", "fusion": "late", "rnn": "lstm"}, ["signal", "image"]
    )
    assert tags == ["data:synthetic", "fusion:late", "rnn:lstm", "modalities:signal+image", "ablation"]


@pytest.mark.slow  # trains or builds a dataset for over a second
def test_robustness_evaluation_writes_curves_and_summaries(tmp_path: Path):
    import json

    summary = run(tmp_path / "train", "fusion=late", "trainer.max_epochs=2")
    base = [f"ckpt_path={summary['best_checkpoint']}", "robustness.enabled=true", "robustness.levels=3"]
    first = evaluate(compose_train(base, output_dir=tmp_path / "e1", config_name="eval"))
    report = json.loads((tmp_path / "e1" / "robustness.json").read_text())
    assert set(report["curves"]) == {"signal", "tokens", "image", "all"}
    assert report["levels"] == [0.0, 0.5, 1.0] and set(report["missing"]) == {"signal", "tokens", "image"}
    assert report["curves"]["all"][0] == pytest.approx(first["metrics"]["test/acc"])  # level 0 is the clean test
    assert (tmp_path / "e1" / "robustness.png").read_bytes()[:4] == b"\x89PNG"
    again = evaluate(
        compose_train(
            [*base, f"robustness.baseline={tmp_path / 'e1' / 'robustness.json'}"],
            output_dir=tmp_path / "e2",
            config_name="eval",
        )
    )
    assert again["robustness"]["effective_robustness"]["all"] == pytest.approx(
        0.0
    )  # seeded: same curve as its baseline


def test_robustness_summaries_against_hand_computed_values():
    from fuselab.training.robustness import effective_robustness, relative_robustness

    assert relative_robustness([1.0, 0.8, 0.4]) == pytest.approx((1.8 * 0.5 + 1.2 * 0.5) / 2)
    # f - (b + f0 - b0) = [0, 0.1, 0.2] for f=[0.9,0.8,0.6], b=[1.0,0.8,0.5]
    assert effective_robustness([0.9, 0.8, 0.6], [1.0, 0.8, 0.5]) == pytest.approx(0.0 + 0.1 + 0.2)
    with pytest.raises(ValueError, match="same levels"):
        effective_robustness([1, 2], [1, 2, 3])


def test_csv_metrics_are_kept_beside_any_dashboard(tmp_path: Path):
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    from fuselab.training.loggers import build_loggers

    cfg = compose_train(["logger=tensorboard"], output_dir=tmp_path)
    loggers = build_loggers(cfg, {}, ["signal"], group="g")
    assert [type(lg) for lg in loggers] == [TensorBoardLogger, CSVLogger]
    assert Path(loggers[1].log_dir) == tmp_path / "csv"
    assert build_loggers(compose_train(["~logger"], output_dir=tmp_path), {}, ["signal"], group="g") == []
