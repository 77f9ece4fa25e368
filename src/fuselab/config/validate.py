"""Checks of a composed config, run before anything heavy: each failure names the fix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fuselab.config.choices import CELLS, POOLINGS, PRECISIONS
from fuselab.errors import ConfigError


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# (dotted key, predicate, what is expected, an example override)
RULES: list[tuple[str, Callable[[Any], bool], str, str]] = [
    ("seed", _is_int, "an integer", "seed=1"),
    ("rnn.cell", lambda v: v in CELLS, f"one of {list(CELLS)}", "rnn=lstm"),
    ("rnn.hidden_size", lambda v: _is_int(v) and v > 0, "a positive integer", "rnn.hidden_size=64"),
    ("rnn.num_layers", lambda v: _is_int(v) and v > 0, "a positive integer", "rnn.num_layers=2"),
    ("rnn.bidirectional", lambda v: isinstance(v, bool), "true or false", "rnn.bidirectional=true"),
    ("rnn.dropout", lambda v: _is_num(v) and 0 <= v < 1, "a number in [0, 1)", "rnn.dropout=0.1"),
    ("rnn.pooling", lambda v: v in POOLINGS, f"one of {list(POOLINGS)}", "rnn.pooling=attention"),
    ("data.batch_size", lambda v: _is_int(v) and v > 0, "a positive integer", "data.batch_size=64"),
    ("data.num_workers", lambda v: _is_int(v) and v >= 0, "an integer >= 0", "data.num_workers=2"),
    (
        "trainer.max_epochs",
        lambda v: _is_int(v) and (v > 0 or v == -1),
        "a positive integer (or -1)",
        "trainer.max_epochs=20",
    ),
    ("model.modality_dropout", lambda v: _is_num(v) and 0 <= v < 1, "a number in [0, 1)", "model.modality_dropout=0.2"),
    ("model.head.dropout", lambda v: _is_num(v) and 0 <= v < 1, "a number in [0, 1)", "model.head.dropout=0.1"),
    ("model.loss.aux_weight", lambda v: _is_num(v) and v >= 0, "a number >= 0", "model.loss.aux_weight=0.5"),
    ("model.optimizer.lr", lambda v: _is_num(v) and v > 0, "a positive number", "model.optimizer.lr=0.001"),
]


def _get(cfg: DictConfig, key: str) -> tuple[bool, Any]:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False, None
        node = node[part]
    return True, node


def validate_train_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` on the first value that cannot work."""
    for key, ok, expected, example in RULES:
        found, value = _get(cfg, key)
        if found and not ok(value):
            raise ConfigError(f"{key}={value!r} is invalid: expected {expected}, e.g. {example}")
    check_precision(cfg)
    for key in ("data", "fusion", "rnn", "model", "trainer"):
        if key not in cfg or cfg[key] is None:
            raise ConfigError(f"the config has no '{key}' section; pick one with {key}=<name>")


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
