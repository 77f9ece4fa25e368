"""Cross-modal attention fusion in the manner of MulT (Tsai et al., 2019): each modality's steps
attend to every other modality's steps, so unaligned sequences fuse without alignment."""

from __future__ import annotations

import torch
from torch import nn

from fuselab.errors import ConfigError
from fuselab.models.fusion.base import FusionContext, FusionOutput
from fuselab.models.transformer import sinusoidal_positions


class CrossModalBlock(nn.Module):
    """Pre-norm cross-attention layer: (B, Tq, d) queries attend to (B, Tk, d) keys/values, then a
    feed-forward layer; both residual."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_ff = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim))

    def forward(self, q: torch.Tensor, kv: torch.Tensor, key_padding: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(kv)
        attended, _ = self.attn(self.norm_q(q), kv, kv, key_padding_mask=key_padding, need_weights=False)
        q = q + attended
        return q + self.ff(self.norm_ff(q))


class CrossModalFusion(nn.Module):
    """Every modality becomes a sequence of ``dim``-wide steps with sine/cosine positions:
    sequences and tokens through their step features (the embedding for tokens), static
    modalities (image, vector) through their encoder as one step. For each target modality m and
    each other modality s, ``layers`` cross-attention blocks let m's steps attend to s's (MulT's
    s -> m transformer); the outputs for m are concatenated over s, pass ``self_layers``
    self-attention layers, and m's last valid step represents it. The head sees those
    representations concatenated: (B, M * (M - 1) * dim) -> (B, O).

    Lengths may differ between modalities (unaligned data). Padding is masked out of every
    attention. An absent source modality contributes nothing to the samples that lack it; an
    absent target modality's representation is zeroed. The ``rnn`` group is not used (MulT has
    no recurrence).
    """

    def __init__(
        self,
        ctx: FusionContext,
        dim: int = 32,
        heads: int = 4,
        layers: int = 2,
        self_layers: int = 1,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        ctx.require_several("crossmodal")
        if dim % heads:
            raise ConfigError(f"fusion.dim={dim} must be a multiple of fusion.heads={heads}")
        self.names, self.dim = ctx.names, dim
        self.temporal = set(ctx.temporal)
        self.inputs = nn.ModuleDict(
            {
                m: ctx.encoders.steps(spec) if m in self.temporal else ctx.encoders(spec)
                for m, spec in ctx.modalities.items()
            }
        )
        self.project = nn.ModuleDict({m: nn.Linear(self.inputs[m].out_dim, dim) for m in self.names})
        self.cross = nn.ModuleDict(
            {
                f"{s}_to_{m}": nn.ModuleList(CrossModalBlock(dim, heads, dropout) for _ in range(layers))
                for m in self.names
                for s in self.names
                if s != m
            }
        )
        width = (len(self.names) - 1) * dim
        self.own = nn.ModuleDict(
            {
                m: nn.TransformerEncoder(
                    nn.TransformerEncoderLayer(width, heads, 2 * width, dropout, batch_first=True, norm_first=True),
                    self_layers,
                    enable_nested_tensor=False,
                )
                for m in self.names
            }
        )
        self.out_dim = len(self.names) * width
        self.head = ctx.head(in_dim=self.out_dim, out_dim=ctx.target.num_outputs)

    def _sequence(self, m: str, mb) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, dim) steps with positions and the (B, T) valid-step mask of modality m."""
        if m in self.temporal:
            steps = self.project[m](self.inputs[m](mb.x, mb.lengths).float())
            total = steps.shape[1]
            mask = torch.arange(total, device=steps.device).unsqueeze(0) < mb.lengths.to(steps.device).unsqueeze(1)
        else:
            steps = self.project[m](self.inputs[m](mb).float()).unsqueeze(1)
            total = 1
            mask = torch.ones(steps.shape[0], 1, dtype=torch.bool, device=steps.device)
        return steps + sinusoidal_positions(total, self.dim).to(steps.device), mask

    def forward(self, inputs: dict) -> FusionOutput:
        seqs = {m: self._sequence(m, inputs[m]) for m in self.names}
        present = {m: inputs[m].present.to(seqs[m][0].device) for m in self.names}
        reps = []
        for m in self.names:
            q, q_mask = seqs[m]
            outs = []
            for s in self.names:
                if s == m:
                    continue
                kv, kv_mask = seqs[s]
                # a sample without s attends to its padding, and the result is dropped below
                padding = ~kv_mask & present[s].unsqueeze(1)
                h = q
                for block in self.cross[f"{s}_to_{m}"]:
                    h = block(h, kv, padding)
                outs.append(q + (h - q) * present[s].to(h.dtype)[:, None, None])
            joint = self.own[m](torch.cat(outs, dim=-1), src_key_padding_mask=~q_mask)
            last = q_mask.sum(1).clamp_min(1) - 1
            rep = joint[torch.arange(joint.shape[0], device=joint.device), last]
            reps.append(rep * present[m].to(rep.dtype).unsqueeze(-1))
        return {"logits": self.head(torch.cat(reps, dim=-1))}
