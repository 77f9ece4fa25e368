"""What every fusion level is built from, and what it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

import torch
from torch import nn

from fuselab.data.specs import ModalitySpec, TargetSpec
from fuselab.errors import ConfigError
from fuselab.models.encoders import EncoderFactory

HeadFactory = Callable[..., nn.Module]  # partial(MLPHead, ...)(in_dim=..., out_dim=...)


@dataclass
class FusionContext:
    """Everything a fusion level needs: the data's description (modalities, target, alignment)
    and the factories of the config groups (``model.encoders``, ``model.head``)."""

    modalities: dict[str, ModalitySpec]
    target: TargetSpec
    encoders: EncoderFactory
    head: HeadFactory
    aligned: bool = False

    @property
    def names(self) -> list[str]:
        return list(self.modalities)

    def require_several(self, level: str) -> None:
        """A level that fuses modalities refuses a single one instead of quietly being unimodal."""
        if len(self.modalities) < 2:
            raise ConfigError(
                f"fusion={level} fuses several modalities, but data.modalities={self.names} selects one. For a "
                "unimodal baseline use fusion=feature (its concat operator passes one modality through), or "
                "select more modalities"
            )

    @property
    def temporal(self) -> list[str]:
        return [m for m, s in self.modalities.items() if s.is_temporal]

    @property
    def static(self) -> list[str]:
        return [m for m, s in self.modalities.items() if not s.is_temporal]


class FusionOutput(TypedDict, total=False):
    """What every fusion level's ``forward(inputs)`` returns."""

    logits: torch.Tensor  # (B, num_outputs)
    aux_logits: dict[str, torch.Tensor]  # {modality: (B, num_outputs)}: the unimodal heads of late and hybrid
    weights: dict[str, torch.Tensor]  # {modality: (B,)} fusion weights, when the operator or combiner has them


def present_matrix(inputs: dict, names: list[str], dtype: torch.dtype) -> torch.Tensor:
    """(B, M) float: 1 where modality m was observed for sample b."""
    return torch.stack([inputs[m].present for m in names], dim=1).to(dtype)
