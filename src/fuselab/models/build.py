"""Build a model from the config groups and the datamodule's specs (never from typed dims)."""

from __future__ import annotations

from typing import Any

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from fuselab.data.specs import DataDescription
from fuselab.models.fusion.base import FusionContext

# the keys of the ``decoder`` group that shape the decoder (the others are training and search settings)
DECODER_ARCHITECTURE = (
    "cell",
    "hidden_size",
    "num_layers",
    "dropout",
    "embed_dim",
    "attention",
    "attention_dim",
    "init",
)


def build_model(cfg: DictConfig, data: DataDescription) -> nn.Module:
    """The fusion model of the config groups ``fusion``, ``rnn`` and ``model`` (encoders, head),
    sized from the data's description (never from dimensions typed into configs)."""
    rnn = instantiate(cfg.rnn)
    encoders = instantiate(cfg.model.encoders, rnn=rnn)
    encoders.check(data.modalities)
    head = instantiate(cfg.model.head)
    ctx = FusionContext(
        modalities=dict(data.modalities), target=data.target, encoders=encoders, head=head, aligned=data.aligned
    )
    kwargs: dict[str, Any] = OmegaConf.to_container(cfg.fusion, resolve=True)  # type: ignore[assignment]
    fusion_cls = get_class(kwargs.pop("_target_"))
    if data.target.is_generation:
        from functools import partial

        from fuselab.models.decoder import RecurrentDecoder
        from fuselab.models.generation import build_generation_model

        arch = {k: cfg.decoder[k] for k in DECODER_ARCHITECTURE}
        decoder = partial(RecurrentDecoder, **arch)
        return build_generation_model(ctx, fusion_cls, kwargs, decoder, int(cfg.decoder.memory_dim))
    return fusion_cls(ctx, **kwargs)
