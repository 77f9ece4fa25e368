"""Checks of a composed config, run before anything heavy: each failure names the fix."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from fuselab.config.choices import ATTENTIONS, CELLS, DECODER_INITS, ENCODERS, POOLINGS, PRECISIONS
from fuselab.errors import ConfigError


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _positive_int(v: Any) -> bool:
    return _is_int(v) and v > 0


def _modalities(v: Any) -> bool:
    if v is None:
        return True
    if not isinstance(v, ListConfig) or len(v) == 0 or not all(isinstance(m, str) and m for m in v):
        return False
    return len(set(v)) == len(v)


def _fraction_or_count(v: Any) -> bool:
    """Lightning's limit_*_batches: a fraction in (0, 1] or a number of batches >= 1."""
    return (_is_int(v) and v >= 1) or (isinstance(v, float) and 0 < v <= 1)


POSITIVE = "a positive integer"
PROBABILITY = "a number in [0, 1)"
# (dotted key, predicate, what is expected, an example override)
RULES: list[tuple[str, Callable[[Any], bool], str, str]] = [
    ("seed", lambda v: _is_int(v) and 0 <= v < 2**32, "an integer in [0, 2**32)", "seed=1"),
    ("resume", lambda v: v is None or v == "auto", "null or auto", "resume=auto"),
    ("rnn.cell", lambda v: v in ENCODERS, f"one of {list(ENCODERS)}", "rnn=lstm"),
    ("rnn.hidden_size", _positive_int, POSITIVE, "rnn.hidden_size=64"),
    ("rnn.num_layers", _positive_int, POSITIVE, "rnn.num_layers=2"),
    ("rnn.bidirectional", lambda v: isinstance(v, bool), "true or false", "rnn.bidirectional=true"),
    ("rnn.dropout", lambda v: _is_num(v) and 0 <= v < 1, PROBABILITY, "rnn.dropout=0.1"),
    ("rnn.pooling", lambda v: v in POOLINGS, f"one of {list(POOLINGS)}", "rnn.pooling=attention"),
    ("data.modalities", _modalities, "null (all) or a list of distinct names", "data.modalities=[signal,image]"),
    ("data.batch_size", _positive_int, POSITIVE, "data.batch_size=64"),
    (
        "data.eval_batch_size",
        lambda v: v is None or _positive_int(v),
        "a positive integer or null (= batch_size)",
        "data.eval_batch_size=256",
    ),
    ("data.num_workers", lambda v: _is_int(v) and v >= 0, "an integer >= 0", "data.num_workers=2"),
    ("fusion.fused_dim", _positive_int, POSITIVE, "fusion.fused_dim=64"),
    ("fusion.tensor_dim", _positive_int, POSITIVE, "fusion.tensor_dim=16"),
    ("fusion.rank", _positive_int, POSITIVE, "fusion.rank=4"),
    ("fusion.max_tensor_size", _positive_int, POSITIVE, "fusion.max_tensor_size=100000"),
    (
        "trainer.max_epochs",
        lambda v: _is_int(v) and (v > 0 or v == -1),
        "a positive integer (or -1)",
        "trainer.max_epochs=20",
    ),
    ("trainer.accumulate_grad_batches", _positive_int, POSITIVE, "trainer.accumulate_grad_batches=2"),
    (
        "callbacks.early_stopping.patience",
        lambda v: _is_int(v) and v >= 0,
        "an integer >= 0 (validations without improvement before stopping)",
        "callbacks.early_stopping.patience=5",
    ),
    (
        "trainer.limit_train_batches",
        _fraction_or_count,
        "a fraction in (0, 1] or a number of batches >= 1",
        "trainer.limit_train_batches=0.5",
    ),
    ("model.encoders.embed_dim", _positive_int, POSITIVE, "model.encoders.embed_dim=32"),
    ("model.encoders.static_dim", _positive_int, POSITIVE, "model.encoders.static_dim=64"),
    ("model.encoders.vector_hidden", _positive_int, POSITIVE, "model.encoders.vector_hidden=64"),
    ("model.head.hidden_dim", _positive_int, POSITIVE, "model.head.hidden_dim=64"),
    ("model.head.num_layers", lambda v: _is_int(v) and v >= 0, "an integer >= 0", "model.head.num_layers=1"),
    ("model.modality_dropout", lambda v: _is_num(v) and 0 <= v < 1, PROBABILITY, "model.modality_dropout=0.2"),
    ("model.head.dropout", lambda v: _is_num(v) and 0 <= v < 1, PROBABILITY, "model.head.dropout=0.1"),
    ("model.loss.aux_weight", lambda v: _is_num(v) and v >= 0, "a finite number >= 0", "model.loss.aux_weight=0.5"),
    ("model.optimizer.lr", lambda v: _is_num(v) and v > 0, "a finite positive number", "model.optimizer.lr=0.001"),
    ("decoder.cell", lambda v: v in CELLS, f"one of {list(CELLS)}", "decoder.cell=lstm"),
    ("decoder.attention", lambda v: v in ATTENTIONS, f"one of {list(ATTENTIONS)}", "decoder.attention=additive"),
    ("decoder.init", lambda v: v in DECODER_INITS, f"one of {list(DECODER_INITS)}", "decoder.init=fused"),
    ("decoder.hidden_size", _positive_int, POSITIVE, "decoder.hidden_size=128"),
    ("decoder.num_layers", _positive_int, POSITIVE, "decoder.num_layers=1"),
    ("decoder.embed_dim", _positive_int, POSITIVE, "decoder.embed_dim=64"),
    ("decoder.attention_dim", _positive_int, POSITIVE, "decoder.attention_dim=64"),
    ("decoder.memory_dim", _positive_int, POSITIVE, "decoder.memory_dim=64"),
    ("decoder.dropout", lambda v: _is_num(v) and 0 <= v < 1, PROBABILITY, "decoder.dropout=0.1"),
    (
        "decoder.scheduled_sampling",
        lambda v: _is_num(v) and 0 <= v <= 1,
        "a number in [0, 1]",
        "decoder.scheduled_sampling=0.25",
    ),
    ("decoder.search.beam_size", _positive_int, POSITIVE, "decoder.search.beam_size=5"),
    ("decoder.search.max_length", _positive_int, POSITIVE, "decoder.search.max_length=30"),
    (
        "decoder.search.length_penalty",
        lambda v: _is_num(v) and v >= 0,
        "a finite number >= 0",
        "decoder.search.length_penalty=1.0",
    ),
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
    found, value = _get(cfg, "data.modalities")
    if found and isinstance(value, str):
        raise ConfigError(f"data.modalities={value} is one name; it takes a list: data.modalities=[{value}]")
    for key, ok, expected, example in RULES:
        found, value = _get(cfg, key)
        if found and not ok(value):
            shown = OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value
            raise ConfigError(f"{key}={shown!r} is invalid: expected {expected}, e.g. {example}")
    check_run_is_as_asked(cfg)
    check_precision(cfg)
    check_transfer(cfg)
    for key in ("data", "fusion", "rnn", "model", "trainer"):
        if key not in cfg or cfg[key] is None:
            raise ConfigError(f"the config has no '{key}' section; pick one with {key}=<name>")
    from fuselab.config.nodes import check_node_keys

    check_node_keys(cfg)


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
