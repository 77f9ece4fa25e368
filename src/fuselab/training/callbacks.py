"""fuselab's own Lightning callbacks."""

from __future__ import annotations

import json
import logging

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

log = logging.getLogger(__name__)


class StepCounter(Callback):
    """Counts the training batches this process ran, so a run that was asked to train and ran
    none is never reported as completed."""

    def __init__(self) -> None:
        self.steps = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        self.steps += 1


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
