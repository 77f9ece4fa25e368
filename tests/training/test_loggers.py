"""What the dashboards carry, read back with the libraries' own readers: wandb's offline run
files through `wandb leet inspect`, TensorBoard's event files through tensorboard's
EventAccumulator (its HParams plugin data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SMALL_DATA, run_cli
from helpers import wandb_records

from fuselab.training.loggers import run_hparams


def test_run_hparams_flattens_choices_overrides_and_seed():
    params = run_hparams(
        {"fusion": "late", "rnn": "gru"},
        ["fusion=late", "model.optimizer.lr=0.01", "data.modalities=[signal,image]", "~logger", "+flag=true"],
        3,
    )
    assert params == {
        "fusion": "late",
        "rnn": "gru",
        "model.optimizer.lr": 0.01,
        "data.modalities": "[signal,image]",
        "flag": True,
        "seed": 3,
    }


def hparams_session(tb_dir: Path) -> tuple[dict, dict[str, float]]:
    """(the HParams session's values, the final/* scalars) of one run's TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    start = next(
        plugin_data_pb2.HParamsPluginData.FromString(c).session_start_info
        for c in content.values()
        if plugin_data_pb2.HParamsPluginData.FromString(c).HasField("session_start_info")
    )
    values = {k: v.string_value or v.number_value or v.bool_value for k, v in start.hparams.items()}
    finals = {t: acc.Scalars(t)[-1].value for t in acc.Tags()["scalars"] if t.startswith("final/")}
    return values, finals


@pytest.mark.slow  # a sweep of two runs with every logger
def test_a_sweep_carries_its_comparison_to_wandb_and_tensorboard(tmp_path: Path):
    args = ["-m", "fuselab.cli.train", "-m", "logger=many", "fusion=feature,late", "seed=5", *SMALL_DATA]
    args += ["trainer.max_epochs=2", "callbacks.progress_bar=null", "trainer.enable_model_summary=false"]
    done = run_cli(args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted(p.parent for p in (tmp_path / "outputs").rglob("summary.json"))
    assert len(runs) == 2
    groups, job_types = set(), set()
    for run_dir in runs:
        summary = json.loads((run_dir / "summary.json").read_text())
        fusion = summary["choices"]["fusion"]
        state, records = wandb_records(run_dir)
        assert state["state"] == "finished" and state["config"]["choice"]["fusion"] == fusion
        assert f"fusion:{fusion}" in state["tags"] and "modalities:signal+tokens+image" in state["tags"]
        fields = state["summary"]
        assert fields["final/test/acc"] == pytest.approx(summary["metrics"]["test/acc"])
        assert fields["converged"] == summary["converged"] and fields["best_epoch"] == summary["best_epoch"]
        assert fields["test/confusion_matrix"]["_type"] == "images/separated"
        assert fields["test/confusion_matrix_chart_table"]["nrows"] == 16  # (true, predicted) for 4 x 4 classes
        assert fields["test/per_class"]["nrows"] == 4 and fields["test/per_class"]["ncols"] == 5  # 4 classes
        # a row per test sample (SMALL_DATA's 64), as fuselab-eval save_predictions=true writes them
        predictions = fields["test/predictions"]
        table = json.loads(next((run_dir / "wandb").glob(f"offline-run-*/files/{predictions['path']}")).read_text())
        own = [f"prediction_{m}" for m in ("signal", "tokens", "image")] if fusion == "late" else []
        names = ["target_name", "prediction_name"]
        assert table["columns"] == ["id", "target", "prediction", *names, *(f"prob_{c}" for c in "0123"), *own]
        assert len(table["data"]) == predictions["nrows"] == 64
        run = next(r["run"] for r in records if r["type"] == "run")
        groups.add(run["run_group"])
        job_types.add(run["job_type"])
        history = {k for r in records if r["type"] == "history" for k in _history_keys(r)}
        assert {"val/acc", "val/loss", "train/loss_epoch", "test/acc", "epoch"} <= history

        values, finals = hparams_session(run_dir / "tensorboard")
        assert values["fusion"] == fusion and values["seed"] == 5
        assert finals["final/test/acc"] == pytest.approx(summary["metrics"]["test/acc"], abs=1e-6)
    assert len(groups) == 1 and len(job_types) == 1  # one sweep: one group, one job type
    assert groups == {f"train/{runs[0].parent.name}"} and job_types == {"train"}  # <experiment>/<sweep>


def _history_keys(record: dict) -> list[str]:
    return list(record["history"].get("item", {}))
