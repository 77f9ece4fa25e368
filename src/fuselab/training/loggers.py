"""Loggers of a run: csv, tensorboard and wandb (grouped by sweep, tagged by choice)."""

from __future__ import annotations

import logging
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger

log = logging.getLogger(__name__)


def run_tags(cfg: DictConfig, choices: dict[str, str], modalities: list[str]) -> list[str]:
    """Tags naming the run's choices, e.g. fusion:feature, rnn:gru, modalities:image+signal."""
    tags = [f"{g}:{choices[g]}" for g in ("data", "fusion", "rnn", "experiment") if choices.get(g)]
    tags.append("modalities:" + "+".join(modalities))
    tags += [str(t) for t in cfg.get("tags") or []]
    return tags


def build_loggers(cfg: DictConfig, choices: dict[str, str], modalities: list[str], group: str) -> list[Logger]:
    """The loggers of ``cfg.logger``, and csv beside them when it is not among them. wandb gets the
    run's choices as tags and config columns and ``group`` (the sweep) as its group; if wandb
    cannot start, the run goes on without it."""
    loggers: list[Logger] = []
    for lg_cfg in (cfg.get("logger") or {}).values():
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
                log.warning("wandb could not start (%s); this run logs to the other loggers only", reason)
            continue
        loggers.append(instantiate(lg_cfg, **kwargs))
    if loggers and not any(isinstance(lg, CSVLogger) for lg in loggers):
        # csv/metrics.csv is every run's record of its curves, whatever dashboards it also feeds
        loggers.append(CSVLogger(save_dir=str(cfg.paths.output_dir), name="csv", version=""))
    return loggers


def finish_loggers(loggers: list[Logger], metrics: dict[str, float], monitor: str | None) -> None:
    """Final numbers as wandb summary fields, so its table and parallel-coordinates views
    compare runs by the best checkpoint's validation and test metrics."""
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            final = {f"final/{k}": v for k, v in metrics.items()}
            if monitor and monitor in metrics:
                final[f"best/{monitor}"] = metrics[monitor]
            lg.experiment.summary.update(final)
