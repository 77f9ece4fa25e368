"""Conditioned fusion: a static modality sets the initial hidden state of the recurrent encoder
of each sequence modality and/or is added to its input at every step."""

from __future__ import annotations

import torch
from torch import nn

from fuselab.errors import ConfigError
from fuselab.models.fusion.base import FusionContext, FusionOutput

MODES = ("init", "add", "both")


class ConditionedFusion(nn.Module):
    """``condition``: the static modality (image or vector) that conditions; null picks the
    first static one selected. ``mode``: init (h0 = tanh(W c)), add (W' c added to every step's
    features) or both. The head sees the pooled sequence encodings, plus the encodings of any
    other static modality (and of the conditioning one with ``include_condition``). An absent
    conditioning modality leaves the recurrence unconditioned (h0 = 0, nothing added)."""

    def __init__(
        self, ctx: FusionContext, mode: str = "init", condition: str | None = None, include_condition: bool = False
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"fusion.mode={mode!r} is not one of {list(MODES)}")
        if not ctx.static:
            raise ConfigError(
                f"fusion=conditioned needs a static modality (image or vector) to condition on; "
                f"data.modalities={ctx.names} has none. Add one, or use fusion=feature."
            )
        if not ctx.temporal:
            raise ConfigError(
                f"fusion=conditioned needs a sequence or tokens modality to condition; data.modalities={ctx.names} "
                "has none. Use fusion=feature."
            )
        condition = condition or ctx.static[0]
        if condition not in ctx.static:
            raise ConfigError(
                f"fusion.condition={condition!r} is not a static modality of this run; pick one of {ctx.static}"
            )
        self.mode, self.condition, self.include_condition = mode, condition, include_condition
        self.temporal = ctx.temporal
        self.others = [m for m in ctx.static if m != condition]
        self.cond_encoder = ctx.encoders(ctx.modalities[condition])
        self.seq_encoders = nn.ModuleDict({m: ctx.encoders(ctx.modalities[m]) for m in self.temporal})
        self.other_encoders = nn.ModuleDict({m: ctx.encoders(ctx.modalities[m]) for m in self.others})
        c_dim = self.cond_encoder.out_dim
        self.to_h0 = nn.ModuleDict(
            {m: nn.Linear(c_dim, e.rnn.hidden_size) for m, e in self.seq_encoders.items()} if mode != "add" else {}
        )
        self.to_step = nn.ModuleDict(
            {m: nn.Linear(c_dim, e.steps.out_dim) for m, e in self.seq_encoders.items()} if mode != "init" else {}
        )
        width = sum(e.out_dim for e in self.seq_encoders.values()) + sum(
            e.out_dim for e in self.other_encoders.values()
        )
        width += c_dim if include_condition else 0
        self.head = ctx.head(in_dim=width, out_dim=ctx.target.num_outputs)

    def forward(self, inputs: dict) -> FusionOutput:
        cond = inputs[self.condition]
        c = self.cond_encoder(cond)
        on = cond.present.to(c.dtype).unsqueeze(-1)
        parts = []
        for m in self.temporal:
            h0 = torch.tanh(self.to_h0[m](c)) * on if m in self.to_h0 else None
            bias = self.to_step[m](c) * on if m in self.to_step else None
            mb = inputs[m]
            parts.append(self.seq_encoders[m](mb, h0=h0, step_bias=bias) * mb.present.unsqueeze(-1).to(c.dtype))
        for m in self.others:
            parts.append(self.other_encoders[m](inputs[m]) * inputs[m].present.unsqueeze(-1).to(c.dtype))
        if self.include_condition:
            parts.append(c * on)
        return {"logits": self.head(torch.cat([p.float() for p in parts], dim=-1))}
