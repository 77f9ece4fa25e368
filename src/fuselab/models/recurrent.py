"""The recurrent encoder shared by every fusion level."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from fuselab.errors import ConfigError
from fuselab.models.pooling import StepPooling

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _cpu_autocast_on(device: torch.device) -> bool:
    if device.type != "cpu":
        return False
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


class RecurrentEncoder(nn.Module):
    """(B, T, D) padded steps + lengths (B,) -> (B, out_dim), ``out_dim = hidden * directions``.

    Sequences are packed, so padding never changes a result. ``pooling``:
      last      the final hidden state of the top layer (both directions when bidirectional)
      mean/max  over the valid steps of the top layer's outputs
      attention a learned softmax over the valid steps

    On CPU the recurrence runs in fp32 even under autocast: oneDNN has no bf16 LSTM kernel on
    CPUs without native bf16 (it fails with "could not create a primitive descriptor") and GRU
    would silently fall back to fp32 anyway. On CUDA autocast applies as usual (cuDNN).
    """

    def __init__(
        self,
        input_dim: int,
        cell: str = "gru",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pooling: str = "last",
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ConfigError(
                f"rnn.cell={cell!r} is not one of {list(CELLS)} (choose the encoder with rnn=rnn|lstm|gru|transformer)"
            )
        if hidden_size < 1 or num_layers < 1:
            raise ConfigError(f"rnn.hidden_size and rnn.num_layers must be >= 1, got {hidden_size}, {num_layers}")
        kwargs = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        self.cell = cell
        self.rnn = CELLS[cell](
            input_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
            **kwargs,
        )
        self.input_dim = input_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.directions = 2 if bidirectional else 1
        self.out_dim = hidden_size * self.directions
        self.pooling = pooling
        self.pool = StepPooling(self.out_dim, pooling)

    def initial_state(self, h0: torch.Tensor) -> torch.Tensor:
        """Expand a (B, hidden) state to every layer and direction: (layers*dirs, B, hidden)."""
        return h0.unsqueeze(0).expand(self.num_layers * self.directions, -1, -1).contiguous()

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, h0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (pooled (B, out_dim), step outputs (B, T, out_dim), valid-step mask (B, T))."""
        total = x.shape[1]
        hx = None if h0 is None else self.initial_state(h0)
        if _cpu_autocast_on(x.device):
            with torch.autocast("cpu", enabled=False):
                outputs, h_n = self._recur(x.float(), lengths, None if hx is None else hx.float(), total)
        else:
            outputs, h_n = self._recur(x, lengths, hx, total)
        mask = torch.arange(total, device=x.device).unsqueeze(0) < lengths.to(x.device).unsqueeze(1)
        return self._pool(outputs, h_n, mask), outputs, mask

    def _recur(
        self, x: torch.Tensor, lengths: torch.Tensor, hx: torch.Tensor | None, total: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        if hx is not None and self.cell == "lstm":
            hx = (hx, torch.zeros_like(hx))
        out, h_n = self.rnn(packed, hx)
        if isinstance(h_n, tuple):  # LSTM: (h_n, c_n)
            h_n = h_n[0]
        outputs, _ = pad_packed_sequence(out, batch_first=True, total_length=total)
        return outputs, h_n

    def _pool(self, outputs: torch.Tensor, h_n: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        last = None
        if self.pooling == "last":  # the top layer's final state, both directions when bidirectional
            top = h_n.view(self.num_layers, self.directions, h_n.shape[1], self.hidden_size)[-1]
            last = top.transpose(0, 1).reshape(h_n.shape[1], self.out_dim)
        return self.pool(outputs, mask, last)
