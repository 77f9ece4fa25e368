"""What an encoder offers a decoder's attention (every encoder's ``memory(mb)``)."""

from __future__ import annotations

from typing import NamedTuple

import torch


class MemoryItems(NamedTuple):
    """What an encoder offers a decoder's attention: its pooled vector (B, out_dim), its items
    (B, N, memory_dim), which items are valid (B, N), and their layout: ("steps", N) or
    ("grid", h, w) for an image's spatial grid, row by row."""

    pooled: torch.Tensor
    items: torch.Tensor
    mask: torch.Tensor
    layout: tuple
