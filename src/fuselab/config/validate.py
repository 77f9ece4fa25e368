"""Checks of a composed config, run before anything heavy: each failure names the fix."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from fuselab.config.choices import PRECISIONS
from fuselab.config.rules import RULES, rule_message
from fuselab.errors import ConfigError


def _get(cfg: DictConfig, key: str) -> tuple[bool, Any]:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False, None
        node = node[part]
    return True, node


def validate_train_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` on the first value that cannot work."""
    found, value = _get(cfg, "data.modalities")
    if found and isinstance(value, str):
        raise ConfigError(f"data.modalities={value} is one name; it takes a list: data.modalities=[{value}]")
    for key, ok, _, _ in RULES:
        found, value = _get(cfg, key)
        if found and not ok(value):
            shown = OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value
            raise ConfigError(rule_message(key, shown))
    check_run_is_as_asked(cfg)
    check_precision(cfg)
    check_transfer(cfg)
    check_wandb(cfg)
    for key in ("data", "fusion", "rnn", "model", "trainer"):
        if key not in cfg or cfg[key] is None:
            raise ConfigError(f"the config has no '{key}' section; pick one with {key}=<name>")
    from fuselab.config.nodes import check_node_keys

    check_node_keys(cfg)


def check_wandb(cfg: DictConfig) -> None:
    """``logger.wandb.log_model`` uploads checkpoints, which an offline run cannot: Lightning's
    WandbLogger refuses the pair, and the run would go on without wandb at all."""
    _, log_model = _get(cfg, "logger.wandb.log_model")
    _, offline = _get(cfg, "logger.wandb.offline")
    if log_model and offline:
        raise ConfigError(
            f"logger.wandb.log_model={log_model} needs an online run (checkpoints are uploaded as artifacts): "
            "add logger.wandb.offline=false, or drop log_model (the run's checkpoints stay in checkpoints/)"
        )


def check_transfer(cfg: DictConfig) -> None:
    """``model.init_from`` names a checkpoint that exists; ``model.freeze`` and
    ``model.init_include`` are lists of names (checked against the model once it is built)."""
    for key in ("freeze", "init_include"):
        found, value = _get(cfg, f"model.{key}")
        if (
            found
            and value is not None
            and not (isinstance(value, ListConfig) and all(isinstance(v, str) and v for v in value))
        ):
            raise ConfigError(
                f"model.{key}={value!r} is invalid: expected a list of parameter names, e.g. "
                f"model.{key}=[body.encoders.audio]"
            )
    found, source = _get(cfg, "model.init_from")
    if found and source:
        from fuselab.config.checkpoints import resolve_checkpoint

        resolve_checkpoint(str(source))


def check_run_is_as_asked(cfg: DictConfig) -> None:
    """Combinations under which a run would end "completed" without having trained or been
    evaluated as asked."""
    fit, test = bool(cfg.get("fit", True)), bool(cfg.get("test", True))
    if not fit and not cfg.get("ckpt_path"):
        raise ConfigError(
            "fit=false evaluates a trained checkpoint, but no ckpt_path is given; "
            "pass ckpt_path=<run>/checkpoints/best.ckpt, or drop fit=false to train"
        )
    trainer = cfg.get("trainer") or {}
    if fit and trainer.get("max_epochs") == -1 and not trainer.get("max_steps", -1) > 0 and not trainer.get("max_time"):
        raise ConfigError(
            "trainer.max_epochs=-1 trains without end (no trainer.max_steps or trainer.max_time is "
            "set); give a number of epochs, e.g. trainer.max_epochs=20, or set trainer.max_steps=<n>"
        )
    if cfg.get("contributions") and not test:
        raise ConfigError(
            "contributions=true scores every modality subset on the test split, and test=false skips it; "
            "drop test=false, or contributions=true"
        )
    if test and trainer.get("limit_test_batches", 1.0) in (0, 0.0):
        raise ConfigError(
            "trainer.limit_test_batches=0 tests nothing, so the run would report no test metrics; "
            "set test=false to skip testing, or trainer.limit_test_batches=1.0"
        )


def check_precision(cfg: DictConfig) -> None:
    if "trainer" not in cfg:
        return
    precision = str(cfg.trainer.get("precision", 32))
    if precision not in PRECISIONS:
        raise ConfigError(f"trainer.precision={precision} is not one of {list(PRECISIONS)}")
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if precision != "16-mixed" and accelerator != "gpu":
        return  # nothing to check, and no need to import torch for it
    import torch

    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if precision == "16-mixed" and on_cpu:
        raise ConfigError(
            "trainer.precision=16-mixed needs a GPU (fp16 autocast is not supported on CPU). "
            "Use trainer.precision=bf16-mixed on CPU, or trainer=gpu."
        )
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise ConfigError(
            "trainer.accelerator=gpu but no CUDA GPU is visible. Use trainer=cpu (or trainer.accelerator=cpu)."
        )


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python (for checkpoints, summaries and wandb)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]
