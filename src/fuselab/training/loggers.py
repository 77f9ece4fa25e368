"""Loggers of a run: csv, tensorboard and wandb (grouped by sweep, tagged by choice)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger

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


def run_hparams(choices: dict[str, str], overrides: list[str], seed: int) -> dict[str, Any]:
    """What a sweep varies, flat: the group choices (``fusion``, ``rnn``, ...), every override
    (``model.lr``, ``data.modalities``, ...; numbers and booleans as such) and the seed, the
    columns of TensorBoard's HParams table."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params: dict[str, Any] = {k: str(v) for k, v in choices.items()}
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_delete() or override.key_or_group.startswith("hydra"):
            continue
        value = override.value()
        keep = isinstance(value, (int, float, bool, str)) and not isinstance(value, type(None))
        params[override.key_or_group.lstrip("+~")] = value if keep else override.get_value_element_as_str()
    params["seed"] = int(seed)
    return params


def finish_loggers(
    loggers: list[Logger],
    metrics: dict[str, float],
    monitor: str | None,
    hparams: dict[str, Any] | None = None,
    record: dict[str, Any] | None = None,
) -> None:
    """The run's outcome where dashboards compare runs. wandb: the final numbers and the run's
    convergence (``converged``, ``best_epoch``) as summary fields, so its table and
    parallel-coordinates views compare runs by the best checkpoint's metrics. TensorBoard:
    ``hparams`` with the final metrics, one HParams session per run, so ``tensorboard --logdir
    <sweep dir>`` shows a sweep as one table."""
    record = record or {}
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            final = {f"final/{k}": v for k, v in metrics.items()}
            if monitor and monitor in metrics:
                final[f"best/{monitor}"] = metrics[monitor]
            final.update({k: record[k] for k in ("converged", "best_epoch") if record.get(k) is not None})
            lg.experiment.summary.update(final)
        elif isinstance(lg, TensorBoardLogger) and hparams is not None and metrics:
            lg.log_hyperparams(hparams, {f"final/{k}": float(v) for k, v in metrics.items()})
            lg.experiment.flush()


def wandb_predictions(loggers: list[Logger], target: Any, world_size: int) -> list[dict[str, Any]] | None:
    """A list to collect the test batches' outputs into, when a wandb logger wants the
    predictions table (one device: a rank sees only its share of the test split)."""
    wanted = any(isinstance(lg, WandbLogger) for lg in loggers) and world_size == 1
    return [] if wanted and target.kind in ("multiclass", "multilabel", "regression") else None


def log_wandb_predictions(loggers: list[Logger], batches: list[dict[str, Any]], target: Any) -> None:
    """``test/predictions``: one row per test sample, as ``fuselab-eval save_predictions=true``
    writes them (id, target, prediction, names, probabilities, each modality's own prediction)."""
    from fuselab.training.evaluate import predictions_frame

    frame = predictions_frame(batches, target)
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            lg.log_table(key="test/predictions", dataframe=frame)


def log_wandb_image(loggers: list[Logger], key: str, path: Any) -> None:
    """A picture the run wrote (e.g. contributions.png) as a wandb image, when it exists."""
    if not Path(path).is_file():
        return
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            lg.log_image(key=key, images=[str(path)])


def finish_wandb_run(failed: bool) -> None:
    """End this job's wandb run, if one is open. Lightning leaves it open (a later WandbLogger in
    the same process reuses it), so without this every job of a sweep run in one process (the
    basic launcher) would log into the first job's run."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.run.finish(exit_code=1 if failed else 0)
