"""Feature-level fusion operators: ``forward(z, present)`` with z = {name: (B, d_m)} and
present (B, M) float -> ``Fused(vector (B, out_dim), weights (B, M) or None)``.

An absent modality never contributes its encoder's output: concat zeroes it, sum/attention/gated
leave it out of the combination, tensor/lowrank replace it with the constant 1 of their
augmented vectors (so the product keeps the terms of the modalities that are present).
Operators that weigh the modalities (attention, gated) return those per-modality weights beside
the fused vector; the others return None. An operator keeps no state between calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import nn

from fuselab.errors import ConfigError

# Operators that are defined for a single modality too (the unimodal baseline of an ablation).
UNIMODAL_OK = ("concat", "sum")


class Fused(NamedTuple):
    """What an operator returns: the fused vector and, for operators that weigh the modalities,
    the per-modality weights (B, M) in the order of ``dims`` (None for the others)."""

    vector: torch.Tensor
    weights: torch.Tensor | None = None


def _masked_softmax(scores: torch.Tensor, present: torch.Tensor, dim: int) -> torch.Tensor:
    mask = present > 0
    while mask.ndim < scores.ndim:
        mask = mask.unsqueeze(-1)
    weights = torch.softmax(scores.float().masked_fill(~mask, float("-inf")), dim=dim)
    return torch.nan_to_num(weights, nan=0.0).to(scores.dtype)  # a sample with nothing present


class ConcatFusion(nn.Module):
    """Concatenation; absent modalities contribute zeros. out_dim = sum of d_m."""

    def __init__(self, dims: dict[str, int], dim: int = 64) -> None:
        super().__init__()
        self.names = list(dims)
        self.out_dim = sum(dims.values())

    def forward(self, z: dict[str, torch.Tensor], present: torch.Tensor) -> Fused:
        return Fused(torch.cat([z[m] * present[:, i : i + 1] for i, m in enumerate(self.names)], dim=-1))


class SumFusion(nn.Module):
    """Each modality projected to ``dim``, summed over the present ones. out_dim = dim."""

    def __init__(self, dims: dict[str, int], dim: int = 64) -> None:
        super().__init__()
        self.names = list(dims)
        self.proj = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in dims.items()})
        self.out_dim = dim

    def forward(self, z: dict[str, torch.Tensor], present: torch.Tensor) -> Fused:
        projected = torch.stack([self.proj[m](z[m]) for m in self.names], dim=1)  # (B, M, dim)
        return Fused((projected * present.unsqueeze(-1).to(projected.dtype)).sum(1))


class AttentionFusion(nn.Module):
    """h_m = tanh(W_m z_m); softmax weights over the present modalities from a learned query;
    fused = sum_m w_m h_m. out_dim = dim."""

    def __init__(self, dims: dict[str, int], dim: int = 64) -> None:
        super().__init__()
        self.names = list(dims)
        self.proj = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in dims.items()})
        self.query = nn.Linear(dim, 1, bias=False)
        self.out_dim = dim

    def forward(self, z: dict[str, torch.Tensor], present: torch.Tensor) -> Fused:
        h = torch.tanh(torch.stack([self.proj[m](z[m]) for m in self.names], dim=1))  # (B, M, dim)
        weights = _masked_softmax(self.query(h).squeeze(-1), present, dim=1)  # (B, M)
        return Fused(torch.bmm(weights.unsqueeze(1), h).squeeze(1), weights)


class GatedFusion(nn.Module):
    """Gated multimodal unit (Arevalo et al., 2017), for any number of modalities:
    h_m = tanh(W_m z_m); per-dimension gates g = softmax over present modalities of
    G [z_1; ...; z_M]; fused = sum_m g_m * h_m. With two modalities the softmax gate is the
    paper's sigmoid z and 1 - z. out_dim = dim."""

    def __init__(self, dims: dict[str, int], dim: int = 64) -> None:
        super().__init__()
        self.names = list(dims)
        self.proj = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in dims.items()})
        self.gate = nn.Linear(sum(dims.values()), dim * len(dims))
        self.dim = dim
        self.out_dim = dim

    def forward(self, z: dict[str, torch.Tensor], present: torch.Tensor) -> Fused:
        h = torch.tanh(torch.stack([self.proj[m](z[m]) for m in self.names], dim=1))  # (B, M, dim)
        x = torch.cat([z[m] * present[:, i : i + 1] for i, m in enumerate(self.names)], dim=-1)
        scores = self.gate(x).view(-1, len(self.names), self.dim)
        gates = _masked_softmax(scores, present, dim=1)  # (B, M, dim)
        return Fused((gates * h).sum(1), gates.mean(-1))


def _augment(zm: torch.Tensor, present_m: torch.Tensor) -> torch.Tensor:
    """[z_m * present, 1]: an absent modality becomes (0, ..., 0, 1)."""
    ones = torch.ones(zm.shape[0], 1, dtype=zm.dtype, device=zm.device)
    return torch.cat([zm * present_m.unsqueeze(-1).to(zm.dtype), ones], dim=-1)


class TensorFusion(nn.Module):
    """Tensor fusion (Zadeh et al., 2017): each modality projected to ``dim`` and augmented with
    a 1, then the outer product of all of them, flattened. out_dim = (dim + 1) ** M; it keeps the
    unimodal, bimodal, ... terms. Refused when out_dim exceeds ``max_size``."""

    def __init__(self, dims: dict[str, int], dim: int = 16, max_size: int = 100_000) -> None:
        super().__init__()
        self.names = list(dims)
        size = (dim + 1) ** len(dims)
        if size > max_size:
            best = int(math.floor(max_size ** (1 / len(dims)))) - 1
            raise ConfigError(
                f"fusion.operator=tensor with {len(dims)} modalities of dim {dim} gives a product of "
                f"{size:,} features, over fusion.max_tensor_size={max_size:,}. Set fusion.tensor_dim<={best}, "
                "use fusion.operator=lowrank, or raise fusion.max_tensor_size."
            )
        self.proj = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in dims.items()})
        self.out_dim = size

    def forward(self, z: dict[str, torch.Tensor], present: torch.Tensor) -> Fused:
        out: torch.Tensor | None = None
        for i, m in enumerate(self.names):
            a = _augment(self.proj[m](z[m]), present[:, i])
            out = a if out is None else torch.einsum("bi,bj->bij", out, a).flatten(1)
        assert out is not None
        return Fused(out)


class LowRankFusion(nn.Module):
    """Low-rank multimodal fusion (Liu et al., 2018): the tensor-fusion product through
    rank-``rank`` modality factors, never materialised. Every factor is a registered parameter
    (a list of plain tensors would never be trained). out_dim = dim."""

    def __init__(self, dims: dict[str, int], dim: int = 64, rank: int = 4) -> None:
        super().__init__()
        self.names = list(dims)
        self.factors = nn.ParameterDict({m: nn.Parameter(torch.empty(rank, d + 1, dim)) for m, d in dims.items()})
        self.rank_weights = nn.Parameter(torch.empty(1, rank))
        self.bias = nn.Parameter(torch.zeros(1, dim))
        for f in self.factors.values():
            nn.init.xavier_normal_(f)
        nn.init.xavier_normal_(self.rank_weights)
        self.out_dim = dim

    def forward(self, z: dict[str, torch.Tensor], present: torch.Tensor) -> Fused:
        product: torch.Tensor | None = None
        for i, m in enumerate(self.names):
            a = _augment(z[m], present[:, i])  # (B, d+1)
            fm = torch.einsum("bd,rdo->rbo", a, self.factors[m].to(a.dtype))  # (rank, B, dim)
            product = fm if product is None else product * fm
        assert product is not None
        return Fused(torch.einsum("xr,rbo->bo", self.rank_weights.to(product.dtype), product) + self.bias)


OPERATORS: dict[str, type[nn.Module]] = {
    "concat": ConcatFusion,
    "sum": SumFusion,
    "attention": AttentionFusion,
    "gated": GatedFusion,
    "tensor": TensorFusion,
    "lowrank": LowRankFusion,
}


def build_custom_operator(node: Mapping[str, Any], dims: dict[str, int]) -> nn.Module:
    """An operator of your own, given as a config node: ``{_target_: mylab.ops.MaxFusion, <its
    settings>}``; the class is called with the modalities' widths (``dims``) and those settings.
    It must set ``out_dim`` and return ``Fused`` (or a plain tensor: no weights)."""
    from hydra.utils import get_class

    settings = {k: v for k, v in node.items() if k != "_target_"}
    try:
        cls = get_class(str(node["_target_"]))
    except Exception as exc:  # noqa: BLE001 - a path that does not import
        raise ConfigError(f"fusion.operator._target_={node['_target_']}: cannot import it ({exc})") from exc
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"fusion.operator._target_={node['_target_']} is not a torch.nn.Module class")
    op = cls(dims, **settings)
    if not isinstance(getattr(op, "out_dim", None), int):
        raise ConfigError(f"fusion.operator: {cls.__name__} sets no integer out_dim (the fused vector's width)")
    return op


def build_operator(
    name: str | Mapping[str, Any],
    dims: dict[str, int],
    dim: int,
    tensor_dim: int = 16,
    rank: int = 4,
    max_tensor_size: int = 100_000,
) -> nn.Module:
    """The operator ``name`` (one of :data:`OPERATORS`), or a node naming a class of your own."""
    if isinstance(name, Mapping):
        if "_target_" not in name:
            raise ConfigError(
                f"fusion.operator={dict(name)} has no _target_: name an operator class, or one of {list(OPERATORS)}"
            )
        return build_custom_operator(name, dims)
    if name not in OPERATORS:
        raise ConfigError(f"fusion.operator={name!r} is not one of {list(OPERATORS)}")
    if len(dims) < 2 and name not in UNIMODAL_OK:
        raise ConfigError(
            f"fusion.operator={name} combines several modalities, but data.modalities has only {list(dims)}. "
            f"Use fusion.operator=concat for a unimodal baseline, or select more modalities."
        )
    if name == "tensor":
        return TensorFusion(dims, dim=tensor_dim, max_size=max_tensor_size)
    if name == "lowrank":
        return LowRankFusion(dims, dim=dim, rank=rank)
    return OPERATORS[name](dims, dim=dim)
