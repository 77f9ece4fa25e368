"""Decoding: greedy and beam search, batched over samples and beams as tensors.

Both take a ``step(tokens (R,), state) -> (log_probs (R, V), state, attention (R, N) or None)``
function over R rows and a state: a tuple of tensors whose first dim is the row. Greedy runs
one row per sample; beam search ``beam_size`` rows per sample (sample-major: rows b*K..b*K+K-1),
so the caller repeats each sample's state ``beam_size`` times first (the attention reads one
memory per sample for all of its beams). A finished row
(it produced the end token) only continues with padding, at no cost; decoding stops when every
row has finished or after ``max_length`` tokens.

Length normalisation (beam search): the final hypotheses are ranked by ``score / length **
length_penalty`` (0: the plain sum of log-probabilities; then the search stops as soon as every
sample's best beam has ended, since no live beam can overtake it). With ``beam_size=1`` and no penalty,
beam search returns exactly greedy's tokens and scores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from fuselab.data.specs import BOS_ID, EOS_ID, PAD_ID

State = tuple[torch.Tensor, ...]
StepFn = Callable[[torch.Tensor, State], tuple[torch.Tensor, State, "torch.Tensor | None"]]


class Decoded(NamedTuple):
    """tokens (B, T) (end token included, then padding); scores (B,) summed log-probabilities;
    attention (B, T, N) per generated token, or None without attention."""

    tokens: torch.Tensor
    scores: torch.Tensor
    attention: torch.Tensor | None


def greedy_search(step: StepFn, state: State, batch_size: int, max_length: int, device: torch.device) -> Decoded:
    tokens = torch.full((batch_size,), BOS_ID, dtype=torch.long, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    scores = torch.zeros(batch_size, device=device)
    out, attention = [], []
    for _ in range(max_length):
        log_probs, state, weights = step(tokens, state)
        log_probs = log_probs.float()
        best = log_probs.argmax(-1)
        nxt = torch.where(finished, torch.full_like(best, PAD_ID), best)
        scores = scores + torch.where(finished, 0.0, log_probs.gather(1, nxt.unsqueeze(1)).squeeze(1))
        out.append(nxt)
        if weights is not None:
            attention.append(weights.float() * (~finished).unsqueeze(1))
        finished = finished | (nxt == EOS_ID)
        tokens = nxt
        if bool(finished.all()):
            break
    return Decoded(torch.stack(out, 1), scores, torch.stack(attention, 1) if attention else None)


def reorder(state: State, rows: torch.Tensor) -> State:
    return tuple(t.index_select(0, rows) for t in state)


def beam_search(
    step: StepFn,
    state: State,
    batch_size: int,
    beam_size: int,
    max_length: int,
    device: torch.device,
    length_penalty: float = 0.0,
) -> Decoded:
    b, k = batch_size, beam_size
    tokens = torch.full((b * k,), BOS_ID, dtype=torch.long, device=device)
    # only the first beam is alive at the start, so the K beams never start as copies
    beam_scores = torch.zeros(b, k, device=device)
    beam_scores[:, 1:] = float("-inf")
    finished = torch.zeros(b, k, dtype=torch.bool, device=device)
    lengths = torch.zeros(b, k, device=device)
    base = (torch.arange(b, device=device) * k).unsqueeze(1)
    # per step: the token each beam took, the beam it came from, and the attention of that
    # parent's step; the sequences are read back from these pointers at the end
    taken: list[torch.Tensor] = []
    parents: list[torch.Tensor] = []
    attention: list[torch.Tensor] = []
    only_pad: torch.Tensor | None = None
    for _ in range(max_length):
        log_probs, state, weights = step(tokens, state)
        v = log_probs.shape[-1]
        if only_pad is None:
            only_pad = torch.full((v,), float("-inf"), device=device)
            only_pad[PAD_ID] = 0.0
        log_probs = torch.where(finished.unsqueeze(-1), only_pad, log_probs.float().view(b, k, v))
        beam_scores, index = (beam_scores.unsqueeze(-1) + log_probs).view(b, k * v).topk(k, dim=1)
        source, token = index // v, index % v
        state = reorder(state, (base + source).view(-1))
        was_finished = finished.gather(1, source)
        lengths = lengths.gather(1, source) + (~was_finished).float()
        finished = was_finished | (token == EOS_ID)
        taken.append(torch.where(was_finished, torch.full_like(token, PAD_ID), token))
        parents.append(source)
        if weights is not None:
            attention.append(weights.float().view(b, k, -1))
        tokens = token.view(-1)
        # scores only fall as a beam grows: without a length penalty, a sample whose best beam
        # has ended is decided (topk sorts, so beam 0 is the best)
        done = finished.all() if length_penalty else finished[:, 0].all()
        if bool(done):
            break
    ranked = beam_scores / lengths.clamp(min=1.0) ** length_penalty if length_penalty else beam_scores
    beam = ranked.argmax(1, keepdim=True)  # (B, 1)
    best_score = beam_scores.gather(1, beam).squeeze(1)
    out_tokens, out_attention = [], []
    for t in range(len(taken) - 1, -1, -1):  # follow the pointers back from the best final beam
        tok = taken[t].gather(1, beam)
        out_tokens.append(tok.squeeze(1))
        parent = parents[t].gather(1, beam)
        if attention:
            w = attention[t].gather(1, parent.unsqueeze(-1).expand(-1, -1, attention[t].shape[-1])).squeeze(1)
            out_attention.append(w * (tok != PAD_ID).float())
        beam = parent
    seq = torch.stack(out_tokens[::-1], 1)
    att = torch.stack(out_attention[::-1], 1) if attention else None
    return Decoded(seq, best_score, att)
