"""Turn a composed config into the objects of one run: datamodule, task, callbacks, loggers,
trainer. Shared by ``fuselab-train`` and ``fuselab-eval``."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import Logger, WandbLogger

from fuselab.data.datamodule import PairedDataModule
from fuselab.data.specs import TaskSpec
from fuselab.distributed import resolve_strategy
from fuselab.errors import ConfigError, user_error
from fuselab.metrics import monitor_for
from fuselab.models.build import build_model
from fuselab.task import FusionTask

log = logging.getLogger(__name__)


def _user_errors(what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - re-raised as is unless it is a user's mistake
        err = user_error(exc)
        if err is None:
            raise
        raise ConfigError(f"{what}: {err}") from exc


def build_datamodule(data_cfg: DictConfig) -> PairedDataModule:
    if "_target_" not in data_cfg:
        raise ConfigError("data has no _target_; choose a dataset with data=<name> (e.g. data=synthetic)")
    dm = _user_errors("data", instantiate, data_cfg, _convert_="all")
    if not isinstance(dm, PairedDataModule):
        raise ConfigError(f"data._target_={data_cfg._target_} is not a fuselab PairedDataModule")
    return dm


def build_task(cfg: DictConfig, dm: PairedDataModule, config: dict[str, Any] | None = None) -> FusionTask:
    model = _user_errors("model", build_model, cfg, dm.modalities, dm.task, aligned=dm.aligned)
    m = cfg.model
    scheduler = instantiate(m.scheduler) if m.get("scheduler") and "_target_" in m.scheduler else None
    return _user_errors(
        "model",
        FusionTask,
        model=model,
        task=dm.task,
        modalities=dm.modalities,
        optimizer=instantiate(m.optimizer),
        scheduler=scheduler,
        label_smoothing=float(m.loss.label_smoothing),
        regression_loss=str(m.loss.regression),
        aux_weight=float(m.loss.aux_weight),
        modality_dropout=float(m.modality_dropout),
        config=config,
    )


def build_callbacks(cfg: DictConfig, task: TaskSpec, with_logger: bool) -> list[Callback]:
    monitor, mode = monitor_for(task)
    callbacks: list[Callback] = []
    for name, cb_cfg in (cfg.get("callbacks") or {}).items():
        if cb_cfg is None or "_target_" not in cb_cfg:
            continue
        cb_cfg = OmegaConf.to_container(cb_cfg, resolve=True)
        if cb_cfg.get("monitor") == "auto":
            cb_cfg["monitor"] = monitor
        if cb_cfg.get("mode") == "auto":
            cb_cfg["mode"] = mode
        cb = instantiate(cb_cfg)
        if isinstance(cb, LearningRateMonitor) and not with_logger:
            continue  # it raises without a logger
        callbacks.append(cb)
    return callbacks


def run_tags(cfg: DictConfig, choices: dict[str, str], modalities: list[str]) -> list[str]:
    """Tags naming the run's choices, e.g. fusion:feature, rnn:gru, modalities:image+signal."""
    tags = [f"{g}:{choices[g]}" for g in ("data", "fusion", "rnn", "experiment") if choices.get(g)]
    tags.append("modalities:" + "+".join(modalities))
    tags += [str(t) for t in cfg.get("tags") or []]
    return tags


def build_loggers(cfg: DictConfig, choices: dict[str, str], modalities: list[str], group: str) -> list[Logger]:
    loggers: list[Logger] = []
    for name, lg_cfg in (cfg.get("logger") or {}).items():
        if lg_cfg is None or "_target_" not in lg_cfg:
            continue
        kwargs: dict[str, Any] = {}
        if lg_cfg._target_.endswith("WandbLogger"):
            if lg_cfg.get("tags") is None:
                kwargs["tags"] = run_tags(cfg, choices, modalities)
            if lg_cfg.get("group") is None:
                kwargs["group"] = group
            try:
                wandb_logger = instantiate(lg_cfg, **kwargs)
                # the run's choices as flat config columns (fusion, rnn, data.modalities, ...)
                wandb_logger.log_hyperparams({"choice": choices, "modalities": "+".join(modalities)})
                loggers.append(wandb_logger)
            except Exception as exc:  # noqa: BLE001 - wandb must never stop a run
                reason = exc.__cause__ or exc  # Hydra wraps the logger's own error
                log.warning("wandb could not start (%s); this run logs to csv only", reason)
            continue
        loggers.append(instantiate(lg_cfg, **kwargs))
    return loggers


def build_trainer(cfg: DictConfig, callbacks: list[Callback], loggers: list[Logger]) -> pl.Trainer:
    strategy = resolve_strategy(cfg.trainer.get("strategy", "auto"))
    return _user_errors(
        "trainer", instantiate, cfg.trainer, callbacks=callbacks, logger=loggers or False, strategy=strategy
    )


def finish_loggers(loggers: list[Logger], metrics: dict[str, float], monitor: str | None) -> None:
    """Final numbers as wandb summary fields, so its table and parallel-coordinates views
    compare runs by the best checkpoint's validation and test metrics."""
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            final = {f"final/{k}": v for k, v in metrics.items()}
            if monitor and monitor in metrics:
                final[f"best/{monitor}"] = metrics[monitor]
            lg.experiment.summary.update(final)


def checkpoint_callback(trainer: pl.Trainer) -> ModelCheckpoint | None:
    return trainer.checkpoint_callback if isinstance(trainer.checkpoint_callback, ModelCheckpoint) else None


def is_wandb(logger: Logger) -> bool:
    return isinstance(logger, WandbLogger)


class RankReport(Callback):
    """Each rank logs the overrides and settings it trains with (one log file per rank)."""

    def __init__(self, overrides: list[str], chash: str) -> None:
        self.overrides, self.chash = overrides, chash

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            log.info("rank %d of %d trains overrides=%s config_hash=%s", trainer.global_rank, trainer.world_size,
                     json.dumps(self.overrides), self.chash)  # fmt: skip
