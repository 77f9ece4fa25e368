"""A fusion operator a user adds without touching fuselab (tests/models/test_custom_operator.py):
one class here, one yaml in tests/models/local_conf/fusion/."""

from __future__ import annotations

import torch
from torch import nn

from fuselab.models.fusion.operators import Fused


class MaxFusion(nn.Module):
    """Each modality projected to ``dim``; the element-wise maximum over the present ones."""

    def __init__(self, dims: dict[str, int], dim: int = 32) -> None:
        super().__init__()
        self.names = list(dims)
        self.proj = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in dims.items()})
        self.out_dim = dim

    def forward(self, z: dict[str, torch.Tensor], present: torch.Tensor) -> Fused:
        h = torch.stack([self.proj[m](z[m]) for m in self.names], dim=1)  # (B, M, dim)
        h = h.masked_fill(present.unsqueeze(-1) <= 0, float("-inf")).amax(1)
        return Fused(torch.nan_to_num(h, neginf=0.0))  # a sample with nothing present: zeros
