"""Late (decision) fusion: each modality has its own encoder and head; the predictions of the
present modalities are combined."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fuselab.data.specs import TargetSpec
from fuselab.errors import ConfigError
from fuselab.models.fusion.base import FusionContext, FusionOutput, present_matrix

COMBINERS = ("mean", "weighted", "poe")


class DecisionCombiner(nn.Module):
    """(B, M, O) per-modality logits + (B, M) present -> (B, O) logits.

    mean      average of the present heads' logits
    weighted  learned softmax weights over modalities, renormalised over the present ones
    poe       product of experts: multiclass sums log-probabilities (log prod p_m), multilabel
              sums logits (the normalised product of Bernoullis); not defined for regression
    """

    def __init__(self, names: list[str], combine: str, target: TargetSpec) -> None:
        super().__init__()
        if combine not in COMBINERS:
            raise ConfigError(f"fusion.combine={combine!r} is not one of {list(COMBINERS)}")
        if combine == "poe" and target.kind == "regression":
            raise ConfigError("fusion.combine=poe needs class probabilities; use mean or weighted for regression")
        self.names = names
        self.combine = combine
        self.kind = target.kind
        self.logit_weights = nn.Parameter(torch.zeros(len(names))) if combine == "weighted" else None

    def forward(self, logits: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(combined logits, the per-expert weights (B, M) of ``weighted``, else None)."""
        p = present.unsqueeze(-1)
        if self.combine == "poe":
            experts = F.log_softmax(logits, dim=-1) if self.kind == "multiclass" else logits
            return (experts * p).sum(1), None
        if self.combine == "weighted":
            scores = self.logit_weights.unsqueeze(0).expand_as(present)
            w = torch.softmax(scores.masked_fill(present <= 0, float("-inf")), dim=1)
            w = torch.nan_to_num(w, nan=0.0)
            return (logits * w.unsqueeze(-1)).sum(1), w
        return (logits * p).sum(1) / p.sum(1).clamp_min(1.0), None


class UnimodalHeads(nn.Module):
    """An encoder and a head per modality: {name: (B, O) logits}."""

    def __init__(self, ctx: FusionContext) -> None:
        super().__init__()
        self.names = ctx.names
        self.encoders = nn.ModuleDict({m: ctx.encoders(spec) for m, spec in ctx.modalities.items()})
        self.heads = nn.ModuleDict(
            {m: ctx.head(in_dim=e.out_dim, out_dim=ctx.target.num_outputs) for m, e in self.encoders.items()}
        )

    def forward(self, inputs: dict) -> dict[str, torch.Tensor]:
        return {m: self.heads[m](self.encoders[m](inputs[m])).float() for m in self.names}


class LateFusion(nn.Module):
    """``combine``: mean | weighted | poe (see :class:`DecisionCombiner`). The per-modality
    logits are returned as ``aux_logits`` (auxiliary losses: ``model.loss.aux_weight``)."""

    def __init__(self, ctx: FusionContext, combine: str = "mean") -> None:
        super().__init__()
        ctx.require_several("late")
        self.names = ctx.names
        self.unimodal = UnimodalHeads(ctx)
        self.combiner = DecisionCombiner(ctx.names, combine, ctx.target)

    def forward(self, inputs: dict) -> FusionOutput:
        per = self.unimodal(inputs)
        stacked = torch.stack([per[m] for m in self.names], dim=1)  # (B, M, O)
        present = present_matrix(inputs, self.names, stacked.dtype)
        logits, w = self.combiner(stacked, present)
        out: FusionOutput = {"logits": logits, "aux_logits": per}
        if w is not None:
            out["weights"] = {m: w[:, i].detach() for i, m in enumerate(self.names)}
        return out
