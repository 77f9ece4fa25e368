"""The recurrent decoder of generation targets: one step at a time, with attention over a
:class:`~fuselab.models.attention.Memory` of every modality.

At step t the decoder attends with its previous top-layer state (Bahdanau's order), feeds the
embedding of the previous token together with that context to a stack of RNN/LSTM/GRU cells,
and predicts the next token from the new top state and the context. Its initial state is the
fused representation of the inputs (``tanh(W z)`` in every layer, the injection conditioned
fusion uses; an LSTM's cell state ``tanh(W_c z)`` too) or zeros. On CPU the cells run in fp32
even under autocast (as the recurrent encoder does), so every precision the trainer accepts
works.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch
from torch import nn

from fuselab.errors import ConfigError
from fuselab.models.attention import ATTENTIONS, Memory, MemoryAttention
from fuselab.models.recurrent import _cpu_autocast_on

CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}
INITS = ("fused", "zero")

# a decoder state: (h (B, layers, H), c (B, layers, H) or an empty (B, 0) tensor)
State = tuple[torch.Tensor, ...]


class RecurrentDecoder(nn.Module):
    """``vocab_size`` tokens out; ``modalities`` and ``memory_dim``: what ``attention`` reads;
    ``init_dim``: the size of the fused vector that sets the initial state (``init=fused``)."""

    def __init__(
        self,
        vocab_size: int,
        modalities: list[str],
        memory_dim: int,
        init_dim: int,
        cell: str = "gru",
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.0,
        embed_dim: int = 64,
        attention: str = "additive",
        attention_dim: int = 64,
        init: str = "fused",
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ConfigError(f"decoder.cell={cell!r} is not one of {list(CELLS)}")
        if attention not in ATTENTIONS:
            raise ConfigError(f"decoder.attention={attention!r} is not one of {list(ATTENTIONS)}")
        if init not in INITS:
            raise ConfigError(f"decoder.init={init!r} is not one of {list(INITS)}")
        if attention == "none" and init == "zero":
            raise ConfigError(
                "decoder.attention=none with decoder.init=zero never sees the inputs; set decoder.init=fused "
                "or an attention (additive, dot, hierarchical)"
            )
        if min(hidden_size, num_layers, embed_dim, attention_dim) < 1:
            raise ConfigError("decoder.hidden_size, num_layers, embed_dim and attention_dim must be >= 1")
        self.cell_kind, self.hidden_size, self.num_layers = cell, hidden_size, num_layers
        self.init, self.attention_kind = init, attention
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.drop = nn.Dropout(dropout)
        context_dim = memory_dim if attention != "none" else 0
        self.attention = (
            MemoryAttention(attention, modalities, hidden_size, memory_dim, attention_dim)
            if attention != "none"
            else None
        )
        sizes = [embed_dim + context_dim] + [hidden_size] * (num_layers - 1)
        self.cells = nn.ModuleList([CELLS[cell](d, hidden_size) for d in sizes])
        self.to_h0 = nn.Linear(init_dim, hidden_size) if init == "fused" else None
        # an LSTM's memory cell gets its own projection of the fused vector (Xu et al., 2015): with
        # c0 = 0 the fused vector reaches the LSTM only through its gates at the first step
        self.to_c0 = nn.Linear(init_dim, hidden_size) if init == "fused" and cell == "lstm" else None
        self.out = nn.Linear(hidden_size + context_dim, vocab_size)

    # ---- state ------------------------------------------------------------------------------
    def prepare(self, memory: Memory) -> Memory:
        """The memory with its attention keys, computed once per sequence."""
        return memory._replace(keys=self.attention.keys(memory)) if self.attention is not None else memory

    def start(self, fused: torch.Tensor) -> State:
        """The initial state (h, c): from the fused vector, or zeros."""
        b = fused.shape[0]
        if self.to_h0 is not None:
            h = torch.tanh(self.to_h0(fused)).unsqueeze(1).expand(b, self.num_layers, self.hidden_size)
        else:
            h = fused.new_zeros(b, self.num_layers, self.hidden_size)
        if self.to_c0 is not None:
            c = torch.tanh(self.to_c0(fused)).unsqueeze(1).expand(b, self.num_layers, self.hidden_size).contiguous()
        else:
            c = torch.zeros_like(h) if self.cell_kind == "lstm" else h.new_zeros(b, 0)
        return (h.contiguous(), c)

    # ---- one step ----------------------------------------------------------------------------
    def step(
        self, tokens: torch.Tensor, state: State, memory: Memory
    ) -> tuple[torch.Tensor, State, torch.Tensor | None]:
        """tokens (B,) the previous token -> (logits (B, V), new state, attention weights (B, N)).
        ``memory`` comes from :meth:`prepare`."""
        h, c = state
        x = self.drop(self.embed(tokens))
        context = weights = None
        if self.attention is not None:
            context, weights = self.attention(h[:, -1], memory)
            x = torch.cat([x, context.to(x.dtype)], -1)
        if _cpu_autocast_on(x.device):
            with torch.autocast("cpu", enabled=False):
                h, c = self._recur(x.float(), h.float(), c.float())
        else:
            h, c = self._recur(x, h, c)
        top = self.drop(h[:, -1])
        features = top if context is None else torch.cat([top, context.to(top.dtype)], -1)
        return self.out(features), (h, c), weights

    def _recur(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hs, cs = [], []
        for layer, cell in enumerate(self.cells):
            if self.cell_kind == "lstm":
                h_l, c_l = cell(x, (h[:, layer], c[:, layer]))
                cs.append(c_l)
            else:
                h_l = cell(x, h[:, layer])
            hs.append(h_l)
            x = self.drop(h_l) if layer < self.num_layers - 1 else h_l
        return torch.stack(hs, 1), (torch.stack(cs, 1) if cs else c)


class DecoderSettings:
    """The ``decoder`` group as one object (its node's ``_target_``): the decoder's architecture
    (:meth:`factory`, the :class:`RecurrentDecoder` the encoder-decoder builds), the width its
    memory items are projected to, and the training and test-time decoding settings the task reads
    (``scheduled_sampling``, ``search``: beam_size, max_length, length_penalty)."""

    def __init__(
        self,
        cell: str = "gru",
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.0,
        embed_dim: int = 64,
        attention: str = "additive",
        attention_dim: int = 64,
        init: str = "fused",
        memory_dim: int = 64,
        scheduled_sampling: float = 0.0,
        search: Mapping[str, Any] | None = None,
    ) -> None:
        self.architecture = {
            "cell": cell,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "dropout": dropout,
            "embed_dim": embed_dim,
            "attention": attention,
            "attention_dim": attention_dim,
            "init": init,
        }
        self.memory_dim = int(memory_dim)
        self.scheduled_sampling = float(scheduled_sampling)
        self.search = {k: (float(v) if k == "length_penalty" else int(v)) for k, v in (search or {}).items()}

    def factory(self) -> Callable[..., RecurrentDecoder]:
        """The decoder, given what only the model knows (vocabulary, modalities, widths)."""
        return partial(RecurrentDecoder, **self.architecture)
