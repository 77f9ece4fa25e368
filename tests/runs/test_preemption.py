"""SIGTERM mid-epoch (a cluster's preemption, docker stop): the run saves where it is, says
interrupted with that checkpoint, and resume=auto ends with the metrics of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from conftest import compose_train
from pytorch_lightning.callbacks import Callback

from fuselab.runs.job import train_job


class SigtermAt(Callback):
    """Sends this process SIGTERM after a training step, as a cluster's preemption would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


RUN = [
    "data.train_size=640",
    "data.val_size=64",
    "data.test_size=64",
    "data.batch_size=64",  # 10 batches an epoch
    "trainer.max_epochs=3",
    "model.modality_dropout=0.2",  # draws from the RNG every step: a resumption must continue it
    "~logger",
    "callbacks.progress_bar=null",
    "trainer.enable_model_summary=false",
]


@pytest.mark.slow
def test_sigterm_mid_epoch_saves_and_resume_ends_bit_for_bit_as_an_uninterrupted_run(tmp_path: Path, monkeypatch):
    from fuselab.training import build

    expected = train_job(compose_train(RUN, output_dir=tmp_path / "ref" / "runs" / "a"))
    assert expected["status"] == "completed"

    # the same config (resume=auto continues only the same config), with a signal after step 13
    callbacks = build.build_callbacks
    monkeypatch.setattr(build, "build_callbacks", lambda *a, **k: [*callbacks(*a, **k), SigtermAt(13)])
    first = tmp_path / "work" / "runs" / "a"
    with pytest.raises(SystemExit) as exited:
        train_job(compose_train(RUN, output_dir=first))
    monkeypatch.setattr(build, "build_callbacks", callbacks)
    assert exited.value.code == 128 + signal.SIGTERM
    summary = json.loads((first / "summary.json").read_text())
    assert summary["status"] == "interrupted" and "interrupted by SIGTERM during training" in summary["error"]
    assert summary["checkpoint"] == str(first / "checkpoints" / "last.ckpt")
    ckpt = torch.load(summary["checkpoint"], map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 13 and ckpt["epoch"] == 1  # three batches into the second epoch
    (loader,) = ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert loader == {"epoch": 1, "batches_done": 3}

    resumed = train_job(compose_train([*RUN, "resume=auto"], output_dir=tmp_path / "work" / "runs" / "b"))
    assert resumed["status"] == "completed" and resumed["resumed_from"] == summary["checkpoint"]
    assert json.loads((first / "summary.json").read_text())["status"] == "resumed"
    for key in ("test/acc", "test/loss", "val/acc", "val/loss"):
        assert resumed["metrics"][key] == expected["metrics"][key], key  # bit for bit
    assert resumed["history"] == expected["history"] and resumed["best_epoch"] == expected["best_epoch"]
    # the continuation holds its own copy of the best checkpoint; the interrupted run keeps its files
    assert Path(resumed["best_checkpoint"]).parent == tmp_path / "work" / "runs" / "b" / "checkpoints"
    assert (first / "checkpoints" / "best.ckpt").is_file() and (first / "checkpoints" / "last.ckpt").is_file()
