"""A Transformer encoder with the recurrent encoder's interface: the non-recurrent baseline of
an ablation over cells (``rnn=transformer``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from fuselab.errors import ConfigError
from fuselab.models.pooling import StepPooling


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """(length, dim) sine/cosine position codes (Vaswani et al., 2017)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    codes = torch.zeros(length, dim)
    codes[:, 0::2] = torch.sin(position * freq)
    codes[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return codes


class TransformerEncoder(nn.Module):
    """(B, T, D) padded steps + lengths (B,) -> (pooled (B, out_dim), step outputs (B, T, out_dim),
    valid-step mask (B, T)), as :class:`~fuselab.models.recurrent.RecurrentEncoder` returns.

    Steps are projected to ``hidden_size``, given sine/cosine positions, and pass ``num_layers``
    pre-norm self-attention layers (``heads`` heads, feed-forward ``ff_mult * hidden_size``).
    Padding is masked out of every attention, so it never changes a result. ``pooling``: last
    (the output at the last valid step), mean, max or attention. An initial state ``h0`` (B,
    hidden_size), which conditioned fusion gives, enters as an extra first token that every step
    attends to; it is not among the outputs.
    """

    def __init__(
        self,
        input_dim: int,
        cell: str = "transformer",
        hidden_size: int = 64,
        num_layers: int = 2,
        bidirectional: bool = False,
        dropout: float = 0.1,
        pooling: str = "mean",
        heads: int = 4,
        ff_mult: int = 2,
    ) -> None:
        super().__init__()
        if cell != "transformer":
            raise ConfigError(f"rnn.cell={cell!r}: this encoder is the Transformer; choose the cell with rnn=<name>")
        if bidirectional:
            raise ConfigError("rnn=transformer attends in both directions already; set rnn.bidirectional=false")
        if hidden_size % heads:
            raise ConfigError(f"rnn.hidden_size={hidden_size} must be a multiple of rnn.heads={heads}")
        self.input_dim, self.hidden_size, self.num_layers = input_dim, hidden_size, num_layers
        self.directions = 1
        self.out_dim = hidden_size
        self.pooling = pooling
        self.project = nn.Linear(input_dim, hidden_size)
        layer = nn.TransformerEncoderLayer(
            hidden_size, heads, ff_mult * hidden_size, dropout, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden_size)
        self.pool = StepPooling(hidden_size, pooling)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, h0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, total = x.shape[0], x.shape[1]
        lengths = lengths.to(x.device)
        mask = torch.arange(total, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
        z = self.project(x) + sinusoidal_positions(total, self.hidden_size).to(x.device, self.project.weight.dtype)
        keep = mask
        if h0 is not None:
            z = torch.cat([h0.unsqueeze(1).to(z.dtype), z], dim=1)
            keep = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=x.device), mask], dim=1)
        out = self.norm(self.layers(z, src_key_padding_mask=~keep))
        if h0 is not None:
            out = out[:, 1:]
        out = out * mask.unsqueeze(-1).to(out.dtype)
        last = out[torch.arange(batch, device=x.device), (lengths - 1).clamp_min(0)]
        return self.pool(out, mask, last), out, mask
