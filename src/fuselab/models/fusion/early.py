"""Early fusion: per time step, concatenate the step features of every modality, then ONE
recurrent encoder, then the head."""

from __future__ import annotations

import torch
from torch import nn

from fuselab.errors import ConfigError
from fuselab.models.fusion.base import FusionContext, FusionOutput

ALIGNS = ("none", "resample")


def resample_steps(x: torch.Tensor, lengths: torch.Tensor, ref_lengths: torch.Tensor, total: int) -> torch.Tensor:
    """Map (B, T_m, F) onto the reference time axis (B, total, F): step t of a sample with
    reference length L takes source step floor(t * L_m / L) (nearest earlier step)."""
    t = torch.arange(total, device=x.device).unsqueeze(0)
    lm = lengths.to(x.device).unsqueeze(1)
    lr = ref_lengths.to(x.device).unsqueeze(1).clamp_min(1)
    idx = torch.minimum(t * lm // lr, lm - 1).clamp_min(0)
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class EarlyFusion(nn.Module):
    """Static modalities (image, vector) are encoded to a vector and broadcast over time.
    The time axis is that of the first temporal modality. ``align``:
      none      every temporal modality must share its lengths with the first (aligned data)
      resample  each is resampled onto the first's time axis (nearest earlier step)
    """

    def __init__(self, ctx: FusionContext, align: str = "none") -> None:
        super().__init__()
        ctx.require_several("early")
        if align not in ALIGNS:
            raise ConfigError(f"fusion.align={align!r} is not one of {list(ALIGNS)}")
        if not ctx.temporal:
            raise ConfigError(
                f"fusion=early needs at least one sequence or tokens modality; data.modalities={ctx.names} "
                "has none. Use fusion=feature or fusion=late for static modalities."
            )
        if align == "none" and len(ctx.temporal) > 1 and not ctx.aligned:
            raise ConfigError(
                f"fusion=early concatenates time steps, but the sequences {ctx.temporal} are not aligned. "
                "Set fusion.align=resample to resample them onto one time axis, or use aligned data "
                "(e.g. data.aligned=true for synthetic)."
            )
        self.align = align
        self.temporal, self.static = ctx.temporal, ctx.static
        self.steps = nn.ModuleDict({m: ctx.encoders.steps(ctx.modalities[m]) for m in self.temporal})
        self.static_encoders = nn.ModuleDict({m: ctx.encoders(ctx.modalities[m]) for m in self.static})
        width = sum(s.out_dim for s in self.steps.values()) + sum(e.out_dim for e in self.static_encoders.values())
        self.rnn = ctx.encoders.rnn(input_dim=width)
        self.head = ctx.head(in_dim=self.rnn.out_dim, out_dim=ctx.target.num_outputs)

    def forward(self, inputs: dict) -> FusionOutput:
        ref = inputs[self.temporal[0]]
        lengths, total = ref.lengths, ref.x.shape[1]
        parts = []
        for m in self.temporal:
            mb = inputs[m]
            f = self.steps[m](mb.x, mb.lengths)
            if mb.x.shape[1] != total or not torch.equal(mb.lengths, lengths):
                if self.align == "none":
                    raise ConfigError(
                        f"fusion=early: modality {m!r} is not aligned with {self.temporal[0]!r} in this batch "
                        "(different lengths). Set fusion.align=resample."
                    )
                f = resample_steps(f, mb.lengths, lengths, total)
            parts.append(f * mb.present.to(f.dtype)[:, None, None])
        for m in self.static:
            z = self.static_encoders[m](inputs[m]) * inputs[m].present.to(ref.x.device)[:, None]
            parts.append(z.unsqueeze(1).expand(-1, total, -1))
        pooled, _, _ = self.rnn(torch.cat([p.float() for p in parts], dim=-1), lengths)
        return {"logits": self.head(pooled)}
