"""Pooling of per-step outputs into one vector, shared by the recurrent and Transformer encoders."""

from __future__ import annotations

import torch
from torch import nn

from fuselab.config.choices import POOLINGS
from fuselab.errors import ConfigError


class StepPooling(nn.Module):
    """(B, T, D) step outputs + (B, T) valid-step mask -> (B, D).

    mean/max   over the valid steps
    attention  a learned softmax over the valid steps: score_t = v . tanh(W o_t) (no bias on v:
               softmax ignores a shared shift, so it would get no gradient)
    last       given by the encoder (the final state of an RNN, the last valid output of a
               Transformer): ``forward`` takes it as ``last``
    """

    def __init__(self, dim: int, pooling: str) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"rnn.pooling={pooling!r} is not one of {list(POOLINGS)}")
        self.pooling = pooling
        self.attention = (
            nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False))
            if pooling == "attention"
            else None
        )

    def forward(self, outputs: torch.Tensor, mask: torch.Tensor, last: torch.Tensor | None = None) -> torch.Tensor:
        if self.pooling == "last":
            assert last is not None
            return last
        m = mask.unsqueeze(-1)
        if self.pooling == "mean":
            return (outputs * m).sum(1) / m.sum(1).clamp_min(1)
        if self.pooling == "max":
            return outputs.masked_fill(~m, float("-inf")).amax(1)
        scores = self.attention(outputs).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores.float(), dim=1).to(outputs.dtype)
        return torch.bmm(weights.unsqueeze(1), outputs).squeeze(1)
