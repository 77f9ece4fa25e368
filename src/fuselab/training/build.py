"""Turn a composed config into the objects of one run: datamodule, :class:`FusionTask`,
callbacks and trainer (loggers: :mod:`fuselab.training.loggers`). Shared by training and
evaluation.

What a constructor raises as :class:`~fuselab.errors.ConfigError` reaches the user as one line
naming the part of the config (``data: ...``, ``model: ...``); any other exception is a bug and
keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import Logger

from fuselab.data.datamodule import PairedDataModule
from fuselab.data.specs import DataDescription
from fuselab.errors import ConfigError, user_error
from fuselab.models.build import build_model, decoder_settings
from fuselab.training.module import FusionTask

T = TypeVar("T")


def _config_errors(where: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``; a user's mistake inside it is re-raised naming ``where``."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        err = user_error(exc)
        if err is None:
            raise
        raise ConfigError(f"{where}: {err}") from exc


def build_datamodule(data_cfg: DictConfig) -> PairedDataModule:
    if "_target_" not in data_cfg:
        raise ConfigError("data has no _target_; choose a dataset with data=<name> (e.g. data=synthetic)")
    dm = _config_errors("data", instantiate, data_cfg, _convert_="all")
    if not isinstance(dm, PairedDataModule):
        raise ConfigError(f"data._target_={data_cfg._target_} is not a fuselab PairedDataModule")
    return dm


def describe_data(dm: PairedDataModule) -> DataDescription:
    """``dm.describe()`` (which prepares the dataset once), with its user errors named ``data``."""
    return _config_errors("data", dm.describe)


# weights, their gradients and Adam's two moments: four float32 copies of every parameter
TRAINING_COPIES = 4


def available_memory() -> int | None:
    """Bytes this process could still allocate (Linux MemAvailable), or None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_model_fits(cfg: DictConfig, data: DataDescription) -> int:
    """Count the parameters of the model ``cfg`` builds without allocating them (meta device)
    and refuse a model whose training state cannot fit in memory. Returns the count."""
    import torch

    with torch.device("meta"):
        probe = _config_errors("model", build_model, cfg, data)
    count = sum(p.numel() for p in probe.parameters())
    need = count * 4 * TRAINING_COPIES
    free = available_memory()
    if free is not None and need > free:
        raise ConfigError(
            f"model: {count:,} parameters need about {need / 2**30:.1f} GiB to train (weights, gradients and "
            f"optimizer state, before activations), and {free / 2**30:.1f} GiB is free. Lower rnn.hidden_size, "
            "model.encoders.*, model.head.hidden_dim or fusion.*_dim"
        )
    return count


def build_fusion_task(
    cfg: DictConfig,
    data: DataDescription,
    config: dict[str, Any] | None = None,
    class_weights: list[float] | None = None,
) -> FusionTask:
    """The model of ``cfg.fusion``/``cfg.rnn``/``cfg.model`` for ``data``, wrapped in the training
    loop. Its size is checked first, so an absurd setting fails with an estimate instead of an
    allocation error. ``class_weights``: resolved weights (see :func:`resolve_class_weights`)."""
    check_model_fits(cfg, data)
    model = _config_errors("model", build_model, cfg, data)
    m = cfg.model
    scheduler = instantiate(m.scheduler) if m.get("scheduler") and "_target_" in m.scheduler else None
    return _config_errors(
        "model",
        FusionTask,
        model=model,
        data=data,
        optimizer=instantiate(m.optimizer),
        scheduler=scheduler,
        loss=_config_errors("model.loss", build_loss, m.loss, data, class_weights),
        modality_dropout=float(m.modality_dropout),
        metrics=_names(m.get("metrics")),
        monitor=m.get("monitor"),
        **_decoding(cfg, data),
        config=config,
    )


def build_loss(node: DictConfig, data: DataDescription, class_weights: list[float] | None) -> Any:
    """The ``model.loss`` node built for the data's target; ``class_weights`` are the resolved ones
    (:func:`resolve_class_weights`), in place of the node's ``balanced`` or list."""
    return instantiate(node, class_weights=class_weights)(data.target)


def _decoding(cfg: DictConfig, data: DataDescription) -> dict[str, Any]:
    """What the task reads of the ``decoder`` node: scheduled sampling and the test-time search
    (generation targets only)."""
    settings = decoder_settings(cfg) if data.target.is_generation else None
    if settings is None:
        return {}
    return {"scheduled_sampling": settings.scheduled_sampling, "search": settings.search}


def _names(value: Any) -> list[str] | None:
    return [str(v) for v in value] if value else None


def resolve_class_weights(cfg: DictConfig, dm: PairedDataModule, data: DataDescription) -> list[float] | None:
    """``model.loss.class_weights``: null, ``balanced`` (computed from the train split's labels),
    or one weight per class."""
    from fuselab.training.losses import balanced_class_weights

    setting = cfg.model.loss.get("class_weights")
    if setting is None:
        return None
    if setting == "balanced":
        return balanced_class_weights(dm.split_labels("train"), data.target)
    if isinstance(setting, str):
        raise ConfigError(f"model.loss.class_weights={setting} is not balanced, null or a list, e.g. [1.0,3.0]")
    return [float(w) for w in setting]


def build_callbacks(cfg: DictConfig, monitored: tuple[str, str], with_logger: bool) -> list[Callback]:
    """The callbacks of ``cfg.callbacks``; ``monitor: auto``/``mode: auto`` become the run's
    monitored metric and its mode (``FusionTask.monitor``, from ``model.monitor``)."""
    monitor, mode = monitored
    callbacks: list[Callback] = []
    for cb_cfg in (cfg.get("callbacks") or {}).values():
        if cb_cfg is None or "_target_" not in cb_cfg:
            continue
        plain = OmegaConf.to_container(cb_cfg, resolve=True)
        if plain.get("monitor") == "auto":
            plain["monitor"] = monitor
        if plain.get("mode") == "auto":
            plain["mode"] = mode
        cb = instantiate(plain)
        if isinstance(cb, LearningRateMonitor) and not with_logger:
            continue  # it raises without a logger
        callbacks.append(cb)
    return callbacks


def build_trainer(
    cfg: DictConfig, callbacks: list[Callback], loggers: list[Logger], strategy: Any = None
) -> pl.Trainer:
    """``cfg.trainer``; ``strategy`` replaces its strategy when given (DDP inside a multirun)."""
    extra = {"strategy": strategy} if strategy is not None else {}
    return _config_errors("trainer", instantiate, cfg.trainer, callbacks=callbacks, logger=loggers or False, **extra)


def evaluation_trainer(cfg: DictConfig) -> pl.Trainer:
    """A trainer of ``cfg.trainer`` that only evaluates: no logger, callbacks or checkpoints, so
    extra test passes (contributions, robustness) leave the run's logged metrics as they are."""
    return _config_errors("trainer", instantiate, cfg.trainer, logger=False, callbacks=[], enable_checkpointing=False)


def checkpoint_callback(trainer: pl.Trainer) -> ModelCheckpoint | None:
    return trainer.checkpoint_callback if isinstance(trainer.checkpoint_callback, ModelCheckpoint) else None
