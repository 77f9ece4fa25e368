"""Build a model from the config groups and the datamodule's specs (never from typed dims)."""

from __future__ import annotations

from typing import Any

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from fuselab.data.specs import ModalitySpec, TaskSpec
from fuselab.models.fusion.base import FusionContext


def build_model(
    cfg: DictConfig, modalities: dict[str, ModalitySpec], task: TaskSpec, aligned: bool = False
) -> nn.Module:
    """``cfg`` needs the groups ``fusion``, ``rnn`` and ``model`` (encoders, head)."""
    rnn = instantiate(cfg.rnn)
    encoders = instantiate(cfg.model.encoders, rnn=rnn)
    head = instantiate(cfg.model.head)
    ctx = FusionContext(modalities=dict(modalities), task=task, encoders=encoders, head=head, aligned=aligned)
    kwargs: dict[str, Any] = OmegaConf.to_container(cfg.fusion, resolve=True)  # type: ignore[assignment]
    fusion_cls = get_class(kwargs.pop("_target_"))
    return fusion_cls(ctx, **kwargs)
