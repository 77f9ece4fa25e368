"""What every fusion level is built from, and what it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

import torch
from torch import nn

from fuselab.data.specs import ModalitySpec, TaskSpec
from fuselab.models.encoders import EncoderFactory

HeadFactory = Callable[..., nn.Module]  # partial(MLPHead, ...)(in_dim=..., out_dim=...)


@dataclass
class FusionContext:
    """Everything a fusion level needs, taken from the datamodule and the config groups."""

    modalities: dict[str, ModalitySpec]
    task: TaskSpec
    encoders: EncoderFactory
    head: HeadFactory
    aligned: bool = False

    @property
    def names(self) -> list[str]:
        return list(self.modalities)

    @property
    def temporal(self) -> list[str]:
        return [m for m, s in self.modalities.items() if s.is_temporal]

    @property
    def static(self) -> list[str]:
        return [m for m, s in self.modalities.items() if not s.is_temporal]


class FusionOutput(TypedDict, total=False):
    logits: torch.Tensor  # (B, num_outputs)
    aux_logits: dict[str, torch.Tensor]  # per-modality (B, num_outputs), late and hybrid
    weights: torch.Tensor  # (B, M) fusion weights over modalities, when the operator has them


def present_matrix(inputs: dict, names: list[str], dtype: torch.dtype) -> torch.Tensor:
    """(B, M) float: 1 where modality m was observed for sample b."""
    return torch.stack([inputs[m].present for m in names], dim=1).to(dtype)
