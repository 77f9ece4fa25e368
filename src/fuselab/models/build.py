"""Build a model from the config groups and the datamodule's specs (never from typed dims)."""

from __future__ import annotations

from typing import Any

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from fuselab.data.specs import DataDescription
from fuselab.models.fusion.base import FusionContext


def decoder_settings(cfg: DictConfig) -> Any:
    """The ``decoder`` node built (a :class:`~fuselab.models.decoder.DecoderSettings`), or None
    when the config has none."""
    node = cfg.get("decoder")
    return None if node is None else instantiate(node)


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
        from fuselab.models.generation import build_generation_model

        settings = decoder_settings(cfg)
        return build_generation_model(ctx, fusion_cls, kwargs, settings.factory(), settings.memory_dim)
    return fusion_cls(ctx, **kwargs)
