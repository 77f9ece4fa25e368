"""Encoder-decoder models of ``generation`` targets (captions, transcriptions).

Each selected modality has its encoder (built from its spec, as in every fusion level); the
fusion operator of ``fusion=feature`` combines their pooled vectors into the decoder's initial
state, and the decoder attends over a memory of every modality's items (per-step outputs of a
sequence, the spatial grid of an image), each projected to ``memory_dim``. Absent modalities
(``present`` false) contribute neither to the fused state nor to the memory.

``forward(inputs, target)`` runs the decoder with teacher forcing (optionally scheduled
sampling) and returns per-step logits; ``generate(inputs, ...)`` decodes greedily or with beam
search and returns the tokens, their scores and the attention weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fuselab.data.specs import BOS_ID, PAD_ID
from fuselab.errors import ConfigError
from fuselab.models.attention import Memory
from fuselab.models.decoder import RecurrentDecoder
from fuselab.models.fusion.base import FusionContext
from fuselab.models.fusion.feature import FusedEncoders
from fuselab.models.search import Decoded, beam_search, greedy_search

DecoderFactory = Callable[..., RecurrentDecoder]


class EncoderDecoder(nn.Module):
    """``decoder``: a factory taking (vocab_size, modalities, memory_dim, init_dim); the other
    arguments are those of ``fusion=feature`` (its operator fuses the initial state)."""

    def __init__(
        self,
        ctx: FusionContext,
        decoder: DecoderFactory,
        memory_dim: int = 64,
        operator: str | Mapping[str, Any] = "concat",
        fused_dim: int = 64,
        tensor_dim: int = 16,
        rank: int = 4,
        max_tensor_size: int = 100_000,
    ) -> None:
        super().__init__()
        if not ctx.target.is_generation:
            raise ValueError("EncoderDecoder decodes generation targets")
        self.names = ctx.names
        # the encoders and operator of feature fusion; their fused vector starts the decoder
        self.body = FusedEncoders(ctx, operator, fused_dim, tensor_dim, rank, max_tensor_size)
        encoders = self.body.encoders
        self.project = nn.ModuleDict({m: nn.Linear(e.memory_dim, memory_dim) for m, e in encoders.items()})
        self.register_buffer("never", torch.tensor([PAD_ID, BOS_ID]), persistent=False)
        self.decoder = decoder(
            vocab_size=ctx.target.num_outputs, modalities=self.names, memory_dim=memory_dim, init_dim=self.body.out_dim
        )

    # ---- encoding ----------------------------------------------------------------------------
    def encode(self, inputs: dict) -> tuple[torch.Tensor, Memory, dict[str, torch.Tensor] | None]:
        """(fused vector (B, D), the memory of every modality, fusion weights or None)."""
        pooled, values, masks, segments, layouts = {}, [], [], [], {}
        start = 0
        for m in self.names:
            mb = inputs[m]
            items = self.body.encoders[m].memory(mb)
            pooled[m] = items.pooled
            values.append(self.project[m](items.items))
            masks.append(items.mask & mb.present.unsqueeze(1))
            n = items.items.shape[1]
            segments.append((m, start, start + n))
            layouts[m] = items.layout
            start += n
        fused, weights = self.body.combine(pooled, inputs)
        dtype = values[0].dtype
        memory = Memory(torch.cat([v.to(dtype) for v in values], 1), torch.cat(masks, 1), tuple(segments), layouts)
        return fused, memory, weights

    # ---- training: teacher forcing -----------------------------------------------------------
    def forward(self, inputs: dict, target: torch.Tensor | None = None, sampling: float = 0.0) -> dict[str, Any]:
        """target (B, L) start..end+padding -> logits (B, L-1, V) predicting target[:, 1:].
        ``sampling``: probability of feeding the model's own previous prediction instead of the
        reference token at each step (scheduled sampling; 0 = teacher forcing)."""
        if target is None:
            raise ValueError("EncoderDecoder.forward needs the target (teacher forcing); decode with generate()")
        fused, memory, weights = self.encode(inputs)
        memory = self.decoder.prepare(memory)
        state = self.decoder.start(fused)
        logits = []
        previous = target[:, 0]
        for t in range(target.shape[1] - 1):
            step_logits, state, _ = self.decoder.step(previous, state, memory)
            logits.append(step_logits)
            previous = target[:, t + 1]
            if sampling > 0 and t + 2 < target.shape[1]:
                own = step_logits.detach().argmax(-1)
                use_own = (torch.rand(own.shape, device=own.device) < sampling) & (previous != PAD_ID)
                previous = torch.where(use_own, own, previous)
        out: dict[str, Any] = {"logits": torch.stack(logits, 1)}
        if weights is not None:
            out["weights"] = weights
        return out

    # ---- evaluation: decoding ----------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self, inputs: dict, beam_size: int = 1, max_length: int = 30, length_penalty: float = 0.0
    ) -> tuple[Decoded, Memory]:
        """Greedy (beam_size=1) or beam search; returns the decoded tokens with their summed
        log-probabilities and attention weights, and the memory (its segments and layouts say
        which weight belongs to which modality item)."""
        if beam_size < 1 or max_length < 1:
            raise ConfigError(f"decoder.search: beam_size={beam_size} and max_length={max_length} must be >= 1")
        fused, memory, _ = self.encode(inputs)
        b = fused.shape[0]
        state = self.decoder.start(fused)
        # the beams of a sample read its memory (never copied per beam: see MemoryAttention)
        search_memory = self.decoder.prepare(memory)

        def step(tokens: torch.Tensor, st: tuple) -> tuple:
            logits, st, weights = self.decoder.step(tokens, st, search_memory)
            # padding and the start token are never generated
            logits = logits.float().index_fill(-1, self.never, float("-inf"))
            return F.log_softmax(logits, -1), st, weights

        if beam_size == 1:
            return greedy_search(step, state, b, max_length, fused.device), memory
        state = tuple(t.repeat_interleave(beam_size, 0) for t in state)
        decoded = beam_search(step, state, b, beam_size, max_length, fused.device, length_penalty)
        return decoded, memory


def build_generation_model(
    ctx: FusionContext, fusion_cls: type, fusion: dict[str, Any], decoder: DecoderFactory, memory_dim: int
) -> EncoderDecoder:
    """The generation model of ``fusion=feature`` (its operator settings) and the ``decoder``
    group; other fusion levels predict one output per sample and have no decoder."""
    from fuselab.models.fusion.feature import FeatureFusion

    if not (isinstance(fusion_cls, type) and issubclass(fusion_cls, FeatureFusion)):
        raise ConfigError(
            f"a generation target is decoded from fusion=feature (its operator fuses the decoder's initial "
            f"state; decoder.attention attends over every modality), not {fusion_cls.__name__}: set "
            "fusion=feature"
        )
    return EncoderDecoder(ctx, decoder, memory_dim=memory_dim, **fusion)
