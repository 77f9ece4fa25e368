"""Late (decision) fusion: each modality has its own encoder and head; the predictions of the
present modalities are combined."""

from __future__ import annotations

import torch
from torch import nn

from fuselab.models.fusion.base import FusionContext, FusionOutput, present_matrix

COMBINERS = ("mean",)


class LateFusion(nn.Module):
    """``combine``: mean averages the logits of the present heads."""

    def __init__(self, ctx: FusionContext, combine: str = "mean") -> None:
        super().__init__()
        if combine not in COMBINERS:
            raise ValueError(f"fusion.combine={combine!r} is not one of {list(COMBINERS)}")
        self.names = ctx.names
        self.combine = combine
        self.encoders = nn.ModuleDict({m: ctx.encoders(spec) for m, spec in ctx.modalities.items()})
        self.heads = nn.ModuleDict(
            {m: ctx.head(in_dim=e.out_dim, out_dim=ctx.task.num_outputs) for m, e in self.encoders.items()}
        )

    def forward(self, inputs: dict) -> FusionOutput:
        per = {m: self.heads[m](self.encoders[m](inputs[m])) for m in self.names}
        stacked = torch.stack([per[m].float() for m in self.names], dim=1)  # (B, M, O)
        present = present_matrix(inputs, self.names, stacked.dtype).unsqueeze(-1)
        logits = (stacked * present).sum(1) / present.sum(1).clamp_min(1.0)
        return {"logits": logits, "aux_logits": per}
