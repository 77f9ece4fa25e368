"""Feature (intermediate) fusion: one encoder per modality, a fusion operator over their
vectors, then one head."""

from __future__ import annotations

from torch import nn

from fuselab.models.fusion.base import FusionContext, FusionOutput, present_matrix
from fuselab.models.fusion.operators import build_operator


class FeatureFusion(nn.Module):
    def __init__(self, ctx: FusionContext, operator: str = "concat", fused_dim: int = 64) -> None:
        super().__init__()
        self.names = ctx.names
        self.encoders = nn.ModuleDict({m: ctx.encoders(spec) for m, spec in ctx.modalities.items()})
        self.fuse = build_operator(operator, {m: e.out_dim for m, e in self.encoders.items()}, fused_dim)
        self.head = ctx.head(in_dim=self.fuse.out_dim, out_dim=ctx.task.num_outputs)

    def forward(self, inputs: dict) -> FusionOutput:
        z = {m: self.encoders[m](inputs[m]) for m in self.names}
        present = present_matrix(inputs, self.names, next(iter(z.values())).dtype)
        out: FusionOutput = {"logits": self.head(self.fuse(z, present))}
        weights = getattr(self.fuse, "last_weights", None)
        if weights is not None:
            out["weights"] = weights
        return out
