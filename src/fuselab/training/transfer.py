"""Transfer between runs: initialise parts of a model from another run's checkpoint
(``model.init_from``), and freeze named parts (``model.freeze``).

Names are the model's own parameter names, as the model summary at the start of training
shows them: ``body.encoders.audio.rnn.rnn.weight_ih_l0`` (feature fusion and generation: the
encoders under ``body``), ``encoders.audio...`` (late and hybrid fusion), ``head...``. A pattern
selects a parameter when it equals its name, is a dotted prefix of it (``body.encoders.audio``),
or matches it as a glob (``*.encoders.audio.*``). A pattern that selects nothing is refused
with the model's parts."""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fuselab.config.checkpoints import read_checkpoint, resolve_checkpoint
from fuselab.errors import ConfigError

log = logging.getLogger(__name__)

TASK_PREFIX = "model."  # FusionTask holds the model as ``self.model``
SHOWN = 10  # names listed per kind of mismatch


def matches(name: str, pattern: str) -> bool:
    return name == pattern or name.startswith(pattern + ".") or fnmatch.fnmatchcase(name, pattern)


def _top_level(names: Sequence[str]) -> list[str]:
    """The first two levels of the names (what a pattern usually names), for error messages."""
    return sorted({".".join(n.split(".")[:2]) for n in names})


def _select(names: Sequence[str], patterns: Sequence[str], setting: str) -> list[str]:
    chosen = []
    for pattern in patterns:
        hit = [n for n in names if matches(n, pattern)]
        if not hit:
            raise ConfigError(
                f"{setting}: {pattern!r} names no parameter of this model; its parts are {_top_level(names)}"
            )
        chosen += hit
    return sorted(set(chosen), key=list(names).index)


def load_weights(source: str | Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """The model weights of a fuselab checkpoint (a Lightning checkpoint of a FusionTask), by the
    model's own parameter names."""
    path = resolve_checkpoint(source)
    ckpt = read_checkpoint(path, "model.init_from")
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ConfigError(f"model.init_from={source}: {path} holds no state_dict (not a fuselab checkpoint)")
    weights = {k[len(TASK_PREFIX) :]: v for k, v in state.items() if k.startswith(TASK_PREFIX)}
    if not weights:
        raise ConfigError(f"model.init_from={source}: {path} holds no model.* weights (not a fuselab checkpoint)")
    return path, weights


def init_from(model: nn.Module, source: str | Path, include: Sequence[str] | None = None) -> dict[str, Any]:
    """Copy into ``model`` every tensor of the checkpoint at ``source`` whose name and shape match
    (only those selected by ``include`` when given). Returns what was copied and every mismatch;
    refuses a checkpoint of which nothing fits."""
    path, weights = load_weights(source)
    own = model.state_dict()
    names = list(own)
    wanted = _select(names, list(include), "model.init_include") if include else names
    copied, shapes = [], []
    for name in wanted:
        if name not in weights:
            continue
        if tuple(weights[name].shape) != tuple(own[name].shape):
            shapes.append(f"{name}: checkpoint {tuple(weights[name].shape)}, model {tuple(own[name].shape)}")
            continue
        copied.append(name)
    if not copied:
        raise ConfigError(
            f"model.init_from={source}: no tensor of {path.name} fits this model by name and shape "
            f"(its parts: {_top_level(list(weights))}; this model's: {_top_level(names)})"
        )
    with torch.no_grad():
        for name in copied:
            own[name].copy_(weights[name])
    missing = [n for n in wanted if n not in weights]
    unused = [n for n in weights if n not in own]
    report = {
        "init_from": str(path),
        "initialised": len(copied),
        "initialised_parameters": int(sum(own[n].numel() for n in copied)),
        "not_in_checkpoint": missing,
        "not_in_model": unused,
        "other_shape": shapes,
    }
    log.info(
        "init_from %s: %d tensors (%d values) copied; %d of the model's not in the checkpoint%s; %d of the "
        "checkpoint's not in the model%s; %d with another shape%s",
        path,
        len(copied),
        report["initialised_parameters"],
        len(missing),
        f" {missing[:SHOWN]}" if missing else "",
        len(unused),
        f" {unused[:SHOWN]}" if unused else "",
        len(shapes),
        f" {shapes[:SHOWN]}" if shapes else "",
    )
    return report


def freeze(model: nn.Module, patterns: Sequence[str]) -> dict[str, Any]:
    """Stop the gradients of the parameters ``patterns`` select; normalisation layers whose
    parameters are all frozen keep their running statistics (see :func:`frozen_norms`).
    Returns the counts."""
    params = dict(model.named_parameters())
    chosen = _select(list(params), list(patterns), "model.freeze")
    for name in chosen:
        params[name].requires_grad_(False)
    frozen = int(sum(params[n].numel() for n in chosen))
    total = int(sum(p.numel() for p in params.values()))
    log.info("froze %d of %d parameters (%d tensors: %s)", frozen, total, len(chosen), _top_level(chosen))
    return {"frozen_parameters": frozen, "trainable_parameters": total - frozen, "frozen": chosen}


def frozen_norms(model: nn.Module) -> list[nn.Module]:
    """Batch-norm layers with every parameter frozen: kept in eval mode while training, so a
    frozen encoder stays exactly as loaded."""
    return [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        and any(True for _ in m.parameters())
        and not any(p.requires_grad for p in m.parameters())
    ]


def load_word_vectors(model: nn.Module, spec: Any, path: str, freeze_vectors: bool) -> dict[str, Any]:
    """Initialise the embedding of the tokens modality ``spec`` from a GloVe/word2vec file: the
    rows of the words found (looked up lowercased when not found as they are); the others keep
    their random initialisation. ``freeze_vectors``: the embedding is not trained. Logs and
    returns the share of the vocabulary found."""
    from fuselab.data.readers.text import read_word_vectors, vector_file_dim
    from fuselab.models.encoders import StepFeatures

    where = f"model.encoders.modalities.{spec.name}.vectors"
    if not spec.vocabulary:
        raise ConfigError(
            f"{where}: the {spec.name!r} tokens carry no vocabulary (word vectors need the words: give the column "
            "as kind: text, so fuselab tokenizes it)"
        )
    embeddings = [
        m.embed
        for m in model.modules()
        if isinstance(m, StepFeatures) and m.modality == spec.name and hasattr(m.embed, "weight")
    ]
    if not embeddings:
        raise ConfigError(f"{where}: this model has no embedding of {spec.name!r}")
    try:
        dim = vector_file_dim(path)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    width = int(embeddings[0].weight.shape[1])
    if dim != width:
        raise ConfigError(
            f"{where}: {path} holds {dim}-d vectors but the embedding has {width}; set "
            f"model.encoders.modalities.{spec.name}.embed_dim={dim}"
        )
    vectors, found = read_word_vectors(path, spec.vocabulary)
    words = sum(1 for w in spec.vocabulary if not (w.startswith("<") and w.endswith(">")))
    with torch.no_grad():
        for emb in embeddings:
            rows = torch.from_numpy(found)
            emb.weight[rows] = torch.from_numpy(vectors[found]).to(emb.weight.dtype)
            if freeze_vectors:
                emb.weight.requires_grad_(False)
    share = float(found.sum()) / max(words, 1)
    log.info(
        "word vectors for %r from %s: %d of %d words found (%.1f%%)%s",
        spec.name,
        path,
        int(found.sum()),
        words,
        100 * share,
        ", frozen" if freeze_vectors else "",
    )
    return {"file": path, "found": int(found.sum()), "words": words, "coverage": share, "frozen": freeze_vectors}
