"""fuselab's own Lightning callbacks."""

from __future__ import annotations

import json
import logging

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from fuselab.training.summary import has_converged

log = logging.getLogger(__name__)


class StepCounter(Callback):
    """Counts the training batches this process ran, so a run that was asked to train and ran
    none is never reported as completed."""

    def __init__(self) -> None:
        self.steps = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        self.steps += 1


class ValidationHistory(Callback):
    """The monitored validation metric after every epoch, and whether the run converged: stopped by
    early stopping, or (when it ran to its epoch cap) with its best value at least ``patience``
    validations before the end. Without early stopping ``patience`` is 1: a best value in the final
    validation means the run was still improving. A run that had not converged has a number its
    budget decided, not the method."""

    def __init__(self, monitor: str, mode: str) -> None:
        self.monitor, self.mode = monitor, mode
        self.epochs: list[int] = []
        self.values: list[float] = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after the epoch's metrics are logged (on_validation_epoch_end still sees the last epoch's)
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return  # the sanity check and the final validate/test of the best checkpoint are no epochs
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None:
            self.epochs.append(int(trainer.current_epoch))
            self.values.append(float(value))

    def report(self, stopped_early: bool, patience: int | None = None) -> dict[str, object]:
        if not self.values:
            return {}
        pick = max if self.mode == "max" else min
        best = self.values.index(pick(self.values))
        return {
            "history": {"epoch": self.epochs, self.monitor: self.values},
            "best_epoch": self.epochs[best],
            "stopped_early": stopped_early,
            "patience": patience,
            "converged": has_converged(len(self.values) - 1 - best, stopped_early, patience),
        }


class RankReport(Callback):
    """Each rank logs the overrides and config hash it trains with (one log file per rank), so
    a DDP job whose ranks disagree is visible in its logs."""

    def __init__(self, overrides: list[str], chash: str) -> None:
        self.overrides, self.chash = overrides, chash

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            log.info(
                "rank %d of %d trains overrides=%s config_hash=%s",
                trainer.global_rank,
                trainer.world_size,
                json.dumps(self.overrides),
                self.chash,
            )
