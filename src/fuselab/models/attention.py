"""Attention of a decoder over a memory made of the encoders' outputs.

A :class:`Memory` holds every modality's items (the per-step outputs of a sequence, the spatial
grid of an image, the one vector of a vector modality), projected to a common size, with a mask
of the valid ones (padding and absent modalities are never attended). :class:`MemoryAttention`
reads it with one of:

  additive      Bahdanau et al. (2015): ``v^T tanh(W q + U k)`` over one memory of all modalities
  dot           Luong et al. (2015), "general": ``q^T W k`` over the same memory
  hierarchical  Libovicky and Helcl (2017): additive attention within each modality gives one
                context per modality, then a second additive attention over the modalities

Each returns the context and the weight of every memory item (for hierarchical, the within-
modality weight times its modality's weight), so the weights can be shown.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

ATTENTIONS = ("none", "additive", "dot", "hierarchical")


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim restricted to ``mask``; a row with nothing valid gets zeros."""
    weights = torch.softmax(scores.float().masked_fill(~mask, float("-inf")), dim=-1)
    return torch.nan_to_num(weights, nan=0.0)


class Memory(NamedTuple):
    """What a decoder attends over. ``values`` (B, N, D): every modality's items in order;
    ``mask`` (B, N) the valid ones; ``segments``: (modality, start, end) along N; ``layouts``:
    per modality ``("grid", h, w)`` for an image's spatial grid or ``("steps", n)``."""

    values: torch.Tensor
    mask: torch.Tensor
    segments: tuple[tuple[str, int, int], ...]
    layouts: dict[str, tuple]

    def repeat(self, k: int) -> Memory:
        """Every sample's memory ``k`` times in a row (one per beam)."""
        if k == 1:
            return self
        return self._replace(values=self.values.repeat_interleave(k, 0), mask=self.mask.repeat_interleave(k, 0))

    def modality_weights(self, weights: torch.Tensor) -> torch.Tensor:
        """(..., N) item weights -> (..., M) the weight each modality received."""
        return torch.stack([weights[..., a:b].sum(-1) for _, a, b in self.segments], -1)


class Scorer(nn.Module):
    """Scores of one query against the items of a memory: additive or dot ("general")."""

    def __init__(self, kind: str, query_dim: int, key_dim: int, attention_dim: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "additive":
            self.query = nn.Linear(query_dim, attention_dim, bias=False)
            self.key = nn.Linear(key_dim, attention_dim)
            self.v = nn.Linear(attention_dim, 1, bias=False)
        elif kind == "dot":
            self.query = nn.Linear(query_dim, key_dim, bias=False)
        else:
            raise ValueError(f"scorer {kind!r} is not additive or dot")

    def keys(self, values: torch.Tensor) -> torch.Tensor:
        """What a query is compared with, computed once per sequence (not once per step)."""
        return self.key(values) if self.kind == "additive" else values

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """query (B, Q), keys (B, N, K) -> scores (B, N)."""
        if self.kind == "additive":
            return self.v(torch.tanh(keys + self.query(query).unsqueeze(1))).squeeze(-1)
        return torch.bmm(keys, self.query(query).unsqueeze(-1)).squeeze(-1)


class MemoryAttention(nn.Module):
    """``kind`` additive | dot | hierarchical over a :class:`Memory` of ``modalities`` items of
    size ``memory_dim``. ``forward(query, memory, keys) -> (context (B, D), weights (B, N))``;
    ``keys(memory)`` is computed once per sequence."""

    def __init__(self, kind: str, modalities: list[str], query_dim: int, memory_dim: int, attention_dim: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "hierarchical":
            self.within = nn.ModuleDict(
                {m: Scorer("additive", query_dim, memory_dim, attention_dim) for m in modalities}
            )
            self.across = Scorer("additive", query_dim, memory_dim, attention_dim)
        else:
            self.scorer = Scorer(kind, query_dim, memory_dim, attention_dim)

    def keys(self, memory: Memory) -> list[torch.Tensor]:
        if self.kind != "hierarchical":
            return [self.scorer.keys(memory.values)]
        return [self.within[m].keys(memory.values[:, a:b]) for m, a, b in memory.segments]

    def forward(
        self, query: torch.Tensor, memory: Memory, keys: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        values = memory.values
        if self.kind != "hierarchical":
            weights = masked_softmax(self.scorer(query, keys[0]), memory.mask)
            context = torch.bmm(weights.unsqueeze(1).to(values.dtype), values).squeeze(1)
            return context, weights
        contexts, within = [], []
        for (m, a, b), k in zip(memory.segments, keys):
            w = masked_softmax(self.within[m](query, k), memory.mask[:, a:b])
            within.append(w)
            contexts.append(torch.bmm(w.unsqueeze(1).to(values.dtype), values[:, a:b]).squeeze(1))
        per_modality = torch.stack(contexts, 1)  # (B, M, D)
        seen = torch.stack([memory.mask[:, a:b].any(1) for _, a, b in memory.segments], 1)
        across = masked_softmax(self.across(query, self.across.keys(per_modality)), seen)  # (B, M)
        context = torch.bmm(across.unsqueeze(1).to(values.dtype), per_modality).squeeze(1)
        weights = torch.cat([w * across[:, i : i + 1] for i, w in enumerate(within)], 1)
        return context, weights
