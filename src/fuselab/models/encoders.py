"""One encoder per modality kind, each mapping a :class:`ModalityBatch` to (B, out_dim)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import nn

from fuselab.data.specs import ModalityBatch, ModalitySpec

RNNFactory = Callable[..., nn.Module]  # partial(RecurrentEncoder, cell=..., ...)(input_dim=...)


class MemoryItems(NamedTuple):
    """What an encoder offers a decoder's attention: its pooled vector (B, out_dim), its items
    (B, N, memory_dim), which items are valid (B, N), and their layout: ("steps", N) or
    ("grid", h, w) for an image's spatial grid, row by row."""

    pooled: torch.Tensor
    items: torch.Tensor
    mask: torch.Tensor
    layout: tuple


class StepFeatures(nn.Module):
    """What one time step of a temporal modality looks like before recurrence:
    the raw features of a ``sequence``, or the embedding of a ``tokens`` id. (B, T) or (B, T, D)
    -> (B, T, out_dim)."""

    def __init__(self, spec: ModalitySpec, embed_dim: int) -> None:
        super().__init__()
        if spec.kind == "tokens":
            self.embed: nn.Module = nn.Embedding(int(spec.vocab_size), embed_dim)  # type: ignore[arg-type]
            self.out_dim = embed_dim
        elif spec.kind == "sequence":
            self.embed = nn.Identity()
            self.out_dim = int(spec.shape[-1])  # type: ignore[arg-type]
        else:
            raise ValueError(f"modality {spec.name!r} of kind {spec.kind!r} has no time steps")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


class TemporalEncoder(nn.Module):
    """A sequence or tokens modality: step features, then the recurrent encoder.
    ``h0`` (B, hidden) optionally sets the initial state; ``step_bias`` (B, step_dim) is added to
    every step (both used by conditioned fusion)."""

    def __init__(self, spec: ModalitySpec, rnn: RNNFactory, embed_dim: int) -> None:
        super().__init__()
        self.steps = StepFeatures(spec, embed_dim)
        self.rnn = rnn(input_dim=self.steps.out_dim)
        self.out_dim = self.rnn.out_dim

    def forward(
        self, mb: ModalityBatch, h0: torch.Tensor | None = None, step_bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        steps = self.steps(mb.x)
        if step_bias is not None:
            steps = steps + step_bias.unsqueeze(1)
        pooled, _, _ = self.rnn(steps, mb.lengths, h0=h0)
        return pooled

    def memory(self, mb: ModalityBatch) -> MemoryItems:
        """pooled (B, out_dim), per-step outputs (B, T, out_dim), valid steps (B, T)."""
        pooled, outputs, mask = self.rnn(self.steps(mb.x), mb.lengths)
        return MemoryItems(pooled, outputs, mask, ("steps", outputs.shape[1]))

    @property
    def memory_dim(self) -> int:
        return self.out_dim


class ImageEncoder(nn.Module):
    """(B, C, H, W) -> (B, out_dim): a small CNN (conv-ReLU-pool blocks, 2x2 average pool).
    No batch norm, so a sample's encoding never depends on the rest of its batch."""

    def __init__(self, spec: ModalitySpec, out_dim: int, channels: Sequence[int] = (16, 32), dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        width = int(spec.shape[0])  # type: ignore[arg-type]
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(width, c, 3, padding=1), nn.ReLU()]
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
            width = c
        self.grid_layers = len(layers)  # net[:grid_layers] gives the spatial grid
        layers += [nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(dropout), nn.Linear(width * 4, out_dim), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim
        self.memory_dim = width

    def forward(self, mb: ModalityBatch) -> torch.Tensor:
        return self.net(mb.x)

    def memory(self, mb: ModalityBatch) -> MemoryItems:
        """pooled (B, out_dim), the last conv block's grid (B, h*w, channels) row by row, an
        all-true mask (B, h*w), layout ("grid", h, w)."""
        grid = self.net[: self.grid_layers](mb.x)
        pooled = self.net[self.grid_layers :](grid)
        items = grid.flatten(2).transpose(1, 2)
        mask = torch.ones(items.shape[:2], dtype=torch.bool, device=items.device)
        return MemoryItems(pooled, items, mask, ("grid", grid.shape[2], grid.shape[3]))


class VectorEncoder(nn.Module):
    """(B, D) -> (B, out_dim): a two-layer MLP."""

    def __init__(self, spec: ModalitySpec, out_dim: int, hidden: int = 64, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(int(spec.shape[0]), hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim), nn.ReLU()
        )  # type: ignore[arg-type]
        self.out_dim = out_dim

    def forward(self, mb: ModalityBatch) -> torch.Tensor:
        return self.net(mb.x)

    def memory(self, mb: ModalityBatch) -> MemoryItems:
        """pooled (B, out_dim), the same vector as one memory item (B, 1, out_dim), mask (B, 1)."""
        pooled = self.net(mb.x)
        mask = torch.ones(pooled.shape[0], 1, dtype=torch.bool, device=pooled.device)
        return MemoryItems(pooled, pooled.unsqueeze(1), mask, ("steps", 1))

    @property
    def memory_dim(self) -> int:
        return self.out_dim


class EncoderFactory:
    """Builds the encoder of a modality from its spec (config: ``model.encoders``)."""

    def __init__(
        self,
        rnn: RNNFactory,
        embed_dim: int = 32,
        static_dim: int = 64,
        image_channels: Sequence[int] = (16, 32),
        vector_hidden: int = 64,
        dropout: float = 0.0,
    ) -> None:
        self.rnn = rnn
        self.embed_dim = int(embed_dim)
        self.static_dim = int(static_dim)
        self.image_channels = [int(c) for c in image_channels]
        self.vector_hidden = int(vector_hidden)
        self.dropout = float(dropout)

    def __call__(self, spec: ModalitySpec) -> nn.Module:
        if spec.is_temporal:
            return TemporalEncoder(spec, self.rnn, self.embed_dim)
        if spec.kind == "image":
            return ImageEncoder(spec, self.static_dim, self.image_channels, self.dropout)
        return VectorEncoder(spec, self.static_dim, self.vector_hidden, self.dropout)

    def steps(self, spec: ModalitySpec) -> StepFeatures:
        return StepFeatures(spec, self.embed_dim)
