"""Hybrid fusion: a feature-fused head and late unimodal heads, combined."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fuselab.models.fusion.base import FusionContext, FusionOutput, present_matrix
from fuselab.models.fusion.feature import FusedEncoders
from fuselab.models.fusion.late import DecisionCombiner


class HybridFusion(nn.Module):
    """The modality encoders are shared: their vectors feed the fusion ``operator`` and its head
    (the "fused" expert), and each feeds its own unimodal head. The fused expert and the present
    unimodal experts are combined by ``combine`` (mean | weighted | poe); the fused expert always
    counts as present. Unimodal logits are returned as ``aux_logits``."""

    def __init__(
        self,
        ctx: FusionContext,
        operator: str | Mapping[str, Any] = "concat",
        combine: str = "mean",
        fused_dim: int = 64,
        tensor_dim: int = 16,
        rank: int = 4,
        max_tensor_size: int = 100_000,
    ) -> None:
        super().__init__()
        ctx.require_several("hybrid")
        self.names = ctx.names
        self.body = FusedEncoders(ctx, operator, fused_dim, tensor_dim, rank, max_tensor_size)
        out = ctx.target.num_outputs
        self.fused_head = ctx.head(in_dim=self.body.out_dim, out_dim=out)
        self.heads = nn.ModuleDict({m: ctx.head(in_dim=e.out_dim, out_dim=out) for m, e in self.body.encoders.items()})
        self.combiner = DecisionCombiner(["fused", *ctx.names], combine, ctx.target)

    def forward(self, inputs: dict) -> FusionOutput:
        fused, z, weights = self.body(inputs)
        per = {m: self.heads[m](z[m]).float() for m in self.names}
        stacked = torch.stack([self.fused_head(fused).float(), *(per[m] for m in self.names)], dim=1)
        present = present_matrix(inputs, self.names, stacked.dtype)
        present = torch.cat([torch.ones_like(present[:, :1]), present], dim=1)
        logits, _ = self.combiner(stacked, present)  # the operator's weights are the ones reported
        out: FusionOutput = {"logits": logits, "aux_logits": per}
        if weights is not None:
            out["weights"] = weights
        return out
