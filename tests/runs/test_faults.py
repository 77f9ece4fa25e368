"""Failures a long sweep meets: kill and resume, NaN loss, bad output dirs, wandb down."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAST, SMALL_DATA, compose_train, run_cli

from fuselab.errors import ConfigError
from fuselab.runs.job import train_job as train
from fuselab.training.module import FusionTask, NonFiniteLossError

RESUMABLE = [
    "data.train_size=1500",
    "data.val_size=100",
    "data.test_size=200",
    "trainer.max_epochs=5",
    "~logger",
    "callbacks.progress_bar=null",
    "trainer.enable_model_summary=false",
]


def _summaries(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("summary.json"))]


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_same_final_metrics(tmp_path: Path):
    (tmp_path / "ref").mkdir()
    reference = run_cli(["-m", "fuselab.cli.train", *RESUMABLE], cwd=tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr[-2000:]
    (expected,) = _summaries(tmp_path / "ref" / "outputs")

    work = tmp_path / "killed"
    work.mkdir()
    env = {**os.environ, "FUSELAB_OUTPUTS": str(work / "outputs"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fuselab.cli.train", *RESUMABLE],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not list(work.glob("outputs/train/runs/*/checkpoints/last.ckpt")):
        if proc.poll() is not None:  # it ended by itself: the summary says why
            break
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere in the next epoch
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (killed,) = _summaries(work / "outputs")
    assert killed["status"] == "running", f"the run ended before it could be killed: {killed.get('error')}"

    resumed = run_cli(["-m", "fuselab.cli.train", *RESUMABLE, "resume=auto"], cwd=work)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    by_status = {s["status"]: s for s in _summaries(work / "outputs")}
    assert set(by_status) == {"resumed", "completed"}
    final = by_status["completed"]
    assert final["resumed_from"].endswith("last.ckpt")
    for key in ("test/acc", "test/loss", "val/acc"):
        assert final["metrics"][key] == pytest.approx(expected["metrics"][key], abs=1e-6), key


def poison_inputs(monkeypatch, when) -> None:
    """Float inputs become NaN in the steps for which ``when(task, stage)`` holds."""
    original = FusionTask._step

    def poisoned(self, batch, stage):
        if when(self, stage):
            batch = {
                **batch,
                "inputs": {
                    m: mb._replace(x=mb.x * float("nan")) if mb.x.is_floating_point() else mb
                    for m, mb in batch["inputs"].items()
                },
            }
        return original(self, batch, stage)

    monkeypatch.setattr(FusionTask, "_step", poisoned)


def test_nan_loss_stops_with_step_and_batch_and_keeps_the_checkpoint(tmp_path: Path, monkeypatch):
    poison_inputs(
        monkeypatch, lambda task, stage: stage == "train" and task.current_epoch == 1 and task._batch_idx == 2
    )
    cfg = compose_train(
        [*SMALL_DATA, "trainer.max_epochs=3", "~logger", "callbacks.progress_bar=null"], output_dir=tmp_path
    )
    with pytest.raises(NonFiniteLossError, match="loss is nan at epoch 1, step 10, batch 2"):
        train(cfg)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "NonFiniteLossError" in summary["error"]
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()


def test_nan_test_metrics_fail_the_run_and_keep_the_numbers(tmp_path: Path, monkeypatch):
    """Outputs that go NaN only in testing (an fp16 overflow, extreme test inputs): not completed."""
    poison_inputs(monkeypatch, lambda task, stage: stage == "test")
    cfg = compose_train([*SMALL_DATA, *FAST], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"test/loss=nan.*did not complete"):
        train(cfg)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "test/loss=nan" in summary["error"]
    assert 0 <= summary["metrics"]["val/acc"] <= 1  # validation was finite, and is kept


def test_a_full_disk_leaves_a_failed_summary_and_one_line(tmp_path: Path, monkeypatch):
    import errno

    from fuselab.errors import user_error
    from fuselab.training import summary as summary_module

    record = summary_module.RunSummary(tmp_path, pid=1, config_hash="abc", metrics={"val/acc": 0.5})
    record.write()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "summary.json"))

    monkeypatch.setattr(summary_module.os, "replace", full)
    failure = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "checkpoints" / "last.ckpt"))
    record.failed(failure)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["status"] == "failed" and written["config_hash"] == "abc" and "No space left" in written["error"]
    assert user_error(RuntimeError("saving failed")) is None  # not a user's mistake: keeps its traceback
    chained = RuntimeError("saving failed")
    chained.__cause__ = failure
    assert re.search(r"the disk is full writing .*last.ckpt .*paths.log_dir=.*resume=auto", str(user_error(chained)))


def test_unwritable_output_dir_fails_before_training(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot write to the output directory .* set paths.log_dir"):
        train(compose_train([*SMALL_DATA, *FAST], output_dir=blocker / "run"))


def test_full_disk_fails_before_training(tmp_path: Path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**12, 10**12 - 2**20, 2**20))
    with pytest.raises(ConfigError, match="only 1 MB free on the disk"):
        train(compose_train([*SMALL_DATA, *FAST], output_dir=tmp_path))


def test_wandb_failing_to_start_falls_back_to_csv(tmp_path: Path, monkeypatch, caplog):
    import pytorch_lightning.loggers as loggers

    class Broken(loggers.WandbLogger):
        def __init__(self, *args, **kwargs):
            raise RuntimeError("wandb service unreachable")

    monkeypatch.setattr(loggers, "WandbLogger", Broken)
    overrides = [
        *SMALL_DATA,
        "logger=many",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
        "callbacks.progress_bar=null",
    ]
    summary = train(compose_train(overrides, output_dir=tmp_path))
    assert summary["status"] == "completed"
    assert (tmp_path / "csv" / "metrics.csv").exists()
    assert "wandb could not start (wandb service unreachable); this run logs to the other loggers only" in caplog.text


@pytest.mark.slow
def test_two_processes_into_one_run_directory(tmp_path: Path):
    """Exactly one trains; the other refuses naming the directory and the holder; the completed
    summary survives."""
    run_dir = tmp_path / "shared-run"
    args = [
        "-m",
        "fuselab.cli.train",
        *SMALL_DATA,
        # trains until stopped by time: still running when the second (a new interpreter) arrives
        "trainer.max_epochs=100000",
        "+trainer.max_time=00:00:00:12",
        "callbacks.progress_bar=null",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FUSELAB_OUTPUTS": str(tmp_path / "outputs")}
    first = subprocess.Popen(
        [sys.executable, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while time.time() < deadline and first.poll() is None:
        summary = run_dir / "summary.json"
        if summary.exists() and json.loads(summary.read_text())["status"] == "running":
            break
        time.sleep(0.2)
    second = run_cli(args, cwd=tmp_path)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    assert second.returncode == 2, second.stderr[-2000:]
    assert f"{run_dir} is in use by process {first.pid}" in second.stderr and "Traceback" not in second.stderr
    final = json.loads((run_dir / "summary.json").read_text())
    assert final["status"] == "completed" and final["pid"] == first.pid and "test/acc" in final["metrics"]
    assert "val/acc" in (run_dir / "csv" / "metrics.csv").read_text().splitlines()[0]
