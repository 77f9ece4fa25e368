"""Feature-level fusion operators: {name: (B, d_m)} + present masks -> (B, out_dim).

Every operator zeroes (or leaves out) a modality that is absent for a sample, so an absent
modality never contributes its encoder's output for an empty input.
"""

from __future__ import annotations

import torch
from torch import nn

# Operators that are defined for a single modality too (the unimodal baseline of an ablation).
UNIMODAL_OK = ("concat", "sum")


class ConcatFusion(nn.Module):
    """Concatenation; absent modalities contribute zeros. out_dim = sum of d_m."""

    def __init__(self, dims: dict[str, int]) -> None:
        super().__init__()
        self.names = list(dims)
        self.out_dim = sum(dims.values())

    def forward(self, z: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        return torch.cat([z[m] * present[:, i : i + 1] for i, m in enumerate(self.names)], dim=-1)


class SumFusion(nn.Module):
    """Each modality projected to ``dim``, then summed over the present ones."""

    def __init__(self, dims: dict[str, int], dim: int = 64) -> None:
        super().__init__()
        self.names = list(dims)
        self.proj = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in dims.items()})
        self.out_dim = dim

    def forward(self, z: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        projected = torch.stack([self.proj[m](z[m]) for m in self.names], dim=1)  # (B, M, dim)
        return (projected * present.unsqueeze(-1).to(projected.dtype)).sum(1)


OPERATORS: dict[str, type[nn.Module]] = {"concat": ConcatFusion, "sum": SumFusion}


def build_operator(name: str, dims: dict[str, int], dim: int) -> nn.Module:
    if name not in OPERATORS:
        raise ValueError(f"fusion.operator={name!r} is not one of {list(OPERATORS)}")
    if len(dims) < 2 and name not in UNIMODAL_OK:
        raise ValueError(
            f"fusion.operator={name} combines several modalities, but data.modalities has only {list(dims)}. "
            f"Use fusion.operator=concat for a unimodal baseline, or select more modalities."
        )
    cls = OPERATORS[name]
    return cls(dims) if cls is ConcatFusion else cls(dims, dim=dim)
