"""The one table of setting rules: every value a config may give, what is expected and an
example. ``config/validate.py`` checks a composed config against it before anything is built, and
constructors that can be called without a config (the datamodule base, ``FusionTask``) check
their arguments with :func:`check_setting`, so a rule and its message are written once."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from omegaconf import ListConfig

from fuselab.config.choices import ATTENTIONS, CELLS, DECODER_INITS, ENCODERS, POOLINGS
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
    ("contributions", lambda v: isinstance(v, bool), "true or false", "contributions=true"),
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


RULE_BY_KEY = {key: (ok, expected, example) for key, ok, expected, example in RULES}


def rule_message(key: str, value: Any) -> str:
    _, expected, example = RULE_BY_KEY[key]
    return f"{key}={value!r} is invalid: expected {expected}, e.g. {example}"


def check_setting(key: str, value: Any) -> None:
    """Refuse ``value`` for the setting ``key`` unless its rule in :data:`RULES` holds."""
    ok, _, _ = RULE_BY_KEY[key]
    if not ok(value):
        raise ConfigError(rule_message(key, value))
