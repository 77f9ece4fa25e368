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
    per modality ``("grid", h, w)`` for an image's spatial grid or ``("steps", n)``; ``keys``:
    what an attention compares its queries with, computed once per sequence
    (:meth:`MemoryAttention.keys`)."""

    values: torch.Tensor
    mask: torch.Tensor
    segments: tuple[tuple[str, int, int], ...]
    layouts: dict[str, tuple]
    keys: tuple[torch.Tensor, ...] = ()

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
        """query (B, G, Q): G queries per sample; keys (B, N, K) -> scores (B, G, N)."""
        if self.kind == "additive":
            # in place: the (B, G, N, attention_dim) sum is the largest tensor of a decoding step
            summed = keys.unsqueeze(1) + self.query(query).unsqueeze(2)
            return self.v(torch.tanh_(summed)).squeeze(-1)
        return torch.matmul(self.query(query), keys.transpose(1, 2))


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

    def keys(self, memory: Memory) -> tuple[torch.Tensor, ...]:
        if self.kind != "hierarchical":
            return (self.scorer.keys(memory.values),)
        return tuple(self.within[m].keys(memory.values[:, a:b]) for m, a, b in memory.segments)

    def forward(self, query: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """query (R, Q) -> (context (R, D), weights (R, N)). R may be a multiple G of the
        memory's B samples: rows r*G .. r*G+G-1 read sample r (the beams of a beam search), so
        the memory is never copied per beam."""
        values, keys = memory.values, memory.keys
        b = values.shape[0]
        g = query.shape[0] // b
        q = query.view(b, g, -1)
        mask = memory.mask.unsqueeze(1)  # (B, 1, N)
        if self.kind != "hierarchical":
            weights = masked_softmax(self.scorer(q, keys[0]), mask)  # (B, G, N)
            context = torch.matmul(weights.to(values.dtype), values)  # (B, G, D)
            return context.reshape(b * g, -1), weights.reshape(b * g, -1)
        contexts, within = [], []
        for (m, lo, hi), k in zip(memory.segments, keys):
            w = masked_softmax(self.within[m](q, k), mask[..., lo:hi])
            within.append(w)
            contexts.append(torch.matmul(w.to(values.dtype), values[:, lo:hi]))
        per_modality = torch.stack(contexts, 2).reshape(b * g, len(contexts), -1)  # (R, M, D)
        seen = torch.stack([memory.mask[:, lo:hi].any(1) for _, lo, hi in memory.segments], 1)
        seen = seen.repeat_interleave(g, 0).unsqueeze(1)  # (R, 1, M)
        across = masked_softmax(self.across(query.unsqueeze(1), self.across.keys(per_modality)), seen)
        across = across.squeeze(1)  # (R, M)
        context = torch.bmm(across.unsqueeze(1).to(values.dtype), per_modality).squeeze(1)
        weights = torch.cat([w.reshape(b * g, -1) * across[:, i : i + 1] for i, w in enumerate(within)], 1)
        return context, weights
