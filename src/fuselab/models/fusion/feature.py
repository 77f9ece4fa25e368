"""Feature (intermediate) fusion: one encoder per modality, a fusion operator over their
vectors, then one head."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fuselab.models.fusion.base import FusionContext, FusionOutput, present_matrix
from fuselab.models.fusion.operators import build_operator


class FusedEncoders(nn.Module):
    """The shared part of feature and hybrid fusion: encoders, then the operator.
    forward -> (fused (B, out_dim), per-modality vectors, per-modality weights or None)."""

    def __init__(
        self,
        ctx: FusionContext,
        operator: str | Mapping[str, Any],
        fused_dim: int,
        tensor_dim: int,
        rank: int,
        max_tensor_size: int,
    ) -> None:
        super().__init__()
        self.names = ctx.names
        self.encoders = nn.ModuleDict({m: ctx.encoders(spec) for m, spec in ctx.modalities.items()})
        dims = {m: e.out_dim for m, e in self.encoders.items()}
        self.fuse = build_operator(operator, dims, fused_dim, tensor_dim, rank, max_tensor_size)
        self.out_dim = self.fuse.out_dim

    def forward(self, inputs: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
        z = {m: self.encoders[m](inputs[m]) for m in self.names}
        fused, weights = self.combine(z, inputs)
        return fused, z, weights

    def combine(self, z: dict[str, torch.Tensor], inputs: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """The operator over per-modality vectors ``z`` (absent ones per ``present``), and its
        per-modality weights or None."""
        present = present_matrix(inputs, self.names, next(iter(z.values())).dtype)
        result = self.fuse(z, present)
        fused, w = (result, None) if isinstance(result, torch.Tensor) else result
        return fused, None if w is None else {m: w[:, i].detach() for i, m in enumerate(self.names)}


class FeatureFusion(nn.Module):
    """``operator``: concat | sum | attention | gated | tensor | lowrank (see operators.py), or a
    node ``{_target_: <your operator class>, <its settings>}``.
    ``fused_dim`` is the output size of sum/attention/gated/lowrank, ``tensor_dim`` the size each
    modality is projected to before the tensor product, ``rank`` the rank of lowrank."""

    def __init__(
        self,
        ctx: FusionContext,
        operator: str | Mapping[str, Any] = "concat",
        fused_dim: int = 64,
        tensor_dim: int = 16,
        rank: int = 4,
        max_tensor_size: int = 100_000,
    ) -> None:
        super().__init__()
        self.body = FusedEncoders(ctx, operator, fused_dim, tensor_dim, rank, max_tensor_size)
        self.head = ctx.head(in_dim=self.body.out_dim, out_dim=ctx.target.num_outputs)

    def forward(self, inputs: dict) -> FusionOutput:
        fused, _, weights = self.body(inputs)
        out: FusionOutput = {"logits": self.head(fused)}
        if weights is not None:
            out["weights"] = weights
        return out
