"""Prediction heads."""

from __future__ import annotations

import torch
from torch import nn


class MLPHead(nn.Module):
    """(B, in_dim) -> (B, out_dim): ``num_layers`` hidden layers of ``hidden_dim``, then a linear
    output. ``num_layers=0`` is a linear head."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 64, num_layers: int = 1, dropout: float = 0.1):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_dim), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden_dim
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> (B, out_dim) logits."""
        return self.net(x)
