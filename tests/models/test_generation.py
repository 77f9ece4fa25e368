"""The encoder-decoder of generation targets: attention, decoder, greedy and beam search."""

from __future__ import annotations

import itertools
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from fuselab.data.specs import BOS_ID, EOS_ID, PAD_ID, ModalityBatch, ModalitySpec, TargetSpec
from fuselab.errors import ConfigError
from fuselab.models.attention import Memory, MemoryAttention, masked_softmax
from fuselab.models.decoder import RecurrentDecoder
from fuselab.models.encoders import EncoderFactory
from fuselab.models.fusion.base import FusionContext
from fuselab.models.generation import EncoderDecoder
from fuselab.models.heads import MLPHead
from fuselab.models.recurrent import RecurrentEncoder
from fuselab.models.search import beam_search, greedy_search

VOCAB = ("<pad>", "<bos>", "<eos>", "<unk>", "a", "b", "c")
SPECS = {
    "audio": ModalitySpec("audio", "sequence", (None, 5)),
    "image": ModalitySpec("image", "image", (1, 8, 16)),
}


def model(
    attention: str = "additive", cell: str = "gru", init: str = "fused", modalities=("audio", "image"), encoder=None
):
    torch.manual_seed(0)
    ctx = FusionContext(
        modalities={m: SPECS[m] for m in modalities},
        target=TargetSpec("generation", len(VOCAB), vocabulary=VOCAB),
        encoders=EncoderFactory(encoder or partial(RecurrentEncoder, cell="gru", hidden_size=12), static_dim=10),
        head=partial(MLPHead),
    )
    dec = partial(RecurrentDecoder, cell=cell, hidden_size=16, attention=attention, attention_dim=8, init=init)
    return EncoderDecoder(ctx, dec, memory_dim=12).eval()


def batch(b: int = 3, t: int = 7, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([t, t - 2, 3][:b] + [t] * max(0, b - 3))
    audio = torch.randn(b, t, 5, generator=g)
    return {
        "audio": ModalityBatch(audio, lengths, torch.ones(b, dtype=torch.bool)),
        "image": ModalityBatch(torch.randn(b, 1, 8, 16, generator=g), None, torch.ones(b, dtype=torch.bool)),
    }


def target(b: int = 3) -> torch.Tensor:
    rows = [[BOS_ID, 4, 5, EOS_ID, PAD_ID], [BOS_ID, 6, EOS_ID, PAD_ID, PAD_ID], [BOS_ID, 4, 4, 6, EOS_ID]]
    return torch.tensor((rows * b)[:b])


@pytest.mark.parametrize("attention", ["none", "additive", "dot", "hierarchical"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_shapes_and_gradients(attention, cell):
    m = model(attention, cell).train()
    out = m(batch(), target=target())
    assert out["logits"].shape == (3, 4, len(VOCAB))
    out["logits"].sum().backward()
    assert m.decoder.embed.weight.grad is not None and m.body.encoders["image"].net[0].weight.grad is not None
    decoded, memory = m.eval().generate(batch(), beam_size=1, max_length=6)
    assert decoded.tokens.shape[0] == 3 and decoded.tokens.shape[1] <= 6
    # memory: 7 audio steps and the image's 4x8 grid (one max pool)
    assert memory.values.shape == (3, 7 + 32, 12) and memory.layouts["image"] == ("grid", 4, 8)
    if attention == "none":
        assert decoded.attention is None
    else:
        assert decoded.attention.shape == (3, decoded.tokens.shape[1], 39)
        real = (decoded.tokens != PAD_ID).float()
        # each generated token's weights sum to one, and padding steps of the audio get none
        assert torch.allclose(decoded.attention.sum(-1), real, atol=1e-5)
        assert decoded.attention[1, :, 5:7].abs().max() == 0


def test_attention_never_weighs_masked_items_and_empty_rows_are_zero():
    scores = torch.randn(2, 4)
    mask = torch.tensor([[True, False, True, False], [False, False, False, False]])
    w = masked_softmax(scores, mask)
    assert torch.allclose(w[0].sum(), torch.tensor(1.0)) and w[0, 1] == 0 and w[0, 3] == 0
    assert torch.equal(w[1], torch.zeros(4))


def test_hierarchical_weights_factor_into_modality_weights():
    att = MemoryAttention("hierarchical", ["x", "y"], query_dim=6, memory_dim=4, attention_dim=5)
    memory = Memory(torch.randn(2, 5, 4), torch.ones(2, 5, dtype=torch.bool), (("x", 0, 2), ("y", 2, 5)), {})
    context, weights = att(torch.randn(2, 6), memory._replace(keys=att.keys(memory)))
    assert context.shape == (2, 4) and torch.allclose(weights.sum(-1), torch.ones(2), atol=1e-6)
    per_modality = memory.modality_weights(weights)
    assert per_modality.shape == (2, 2) and (per_modality > 0).all()


def test_padding_of_a_sequence_never_changes_the_decoding():
    m = model("additive")
    b = batch()
    padded = dict(b)
    a = b["audio"]
    padded["audio"] = a._replace(x=torch.cat([a.x, 100 * torch.ones(3, 4, 5)], 1))
    one, _ = m.generate(b, beam_size=3, max_length=5)
    two, _ = m.generate(padded, beam_size=3, max_length=5)
    assert torch.equal(one.tokens, two.tokens) and torch.allclose(one.scores, two.scores, atol=1e-5)


def test_absent_modality_is_neither_attended_nor_fused():
    m = model("dot")
    b = batch()
    b["image"] = b["image"]._replace(present=torch.tensor([True, False, True]))
    decoded, memory = m.generate(b, max_length=5)
    image = slice(7, 39)
    assert decoded.attention[1, :, image].abs().max() == 0 and decoded.attention[0, :, image].sum() > 0
    # the absent image's values do not matter
    b2 = dict(b)
    b2["image"] = b["image"]._replace(x=b["image"].x.clone())
    b2["image"].x[1] = 50.0
    again, _ = m.generate(b2, max_length=5)
    assert torch.equal(decoded.tokens[1], again.tokens[1])


def test_teacher_forcing_logits_do_not_see_the_future():
    m = model("additive")
    t = target()
    changed = t.clone()
    changed[0, 2] = 6
    one = m(batch(), target=t)["logits"]
    two = m(batch(), target=changed)["logits"]
    assert torch.allclose(one[0, :2], two[0, :2]) and not torch.allclose(one[0, 2], two[0, 2])


@pytest.mark.parametrize("attention", ["none", "hierarchical"])
def test_beam_of_one_is_exactly_greedy(attention):
    m = model(attention, "lstm")
    greedy, _ = m.generate(batch(), beam_size=1, max_length=7)
    fused, memory, _ = m.encode(batch())
    memory = m.decoder.prepare(memory)
    state = m.decoder.start(fused)

    def step(tokens, st):
        logits, st, w = m.decoder.step(tokens, st, memory)
        return F.log_softmax(logits.float().index_fill(-1, m.never, float("-inf")), -1), st, w

    beam = beam_search(step, state, 3, 1, 7, torch.device("cpu"))
    assert torch.equal(greedy.tokens, beam.tokens) and torch.equal(greedy.scores, beam.scores)
    if attention != "none":
        assert torch.equal(greedy.attention, beam.attention)


def bigram_step(table: torch.Tensor):
    """A hand-built model: log p(next | previous) from a (V, V) table, per row."""

    def step(tokens, state):
        return table[tokens], state, None

    return step


def best_by_enumeration(table: torch.Tensor, max_length: int) -> tuple[list[int], float]:
    v = table.shape[0]
    words = [i for i in range(v) if i not in (PAD_ID, BOS_ID, EOS_ID)]
    best, best_score = None, -math.inf
    for n in range(max_length + 1):
        for seq in itertools.product(words, repeat=n):
            full = list(seq) + ([EOS_ID] if n < max_length else [])
            score, prev = 0.0, BOS_ID
            for tok in full:
                score += float(table[prev, tok])
                prev = tok
            if score > best_score:
                best, best_score = full, score
    return best, best_score


def test_beam_search_finds_the_best_sequence_of_a_hand_built_model():
    # greedy takes "a" first (0.6) but every continuation of "a" is poor; "b b <eos>" is best
    p = torch.full((6, 6), 1e-9)
    p[BOS_ID, 4], p[BOS_ID, 5] = 0.6, 0.4
    p[4, 4], p[4, 5], p[4, EOS_ID] = 0.34, 0.33, 0.33
    p[5, 5], p[5, 4], p[5, EOS_ID] = 0.9, 0.05, 0.05
    p[PAD_ID, PAD_ID] = p[EOS_ID, PAD_ID] = 1.0
    table = (p / p.sum(1, keepdim=True)).log()
    best, best_score = best_by_enumeration(table, 4)
    beam = beam_search(bigram_step(table), (torch.zeros(3, 0),), 1, 3, 4, torch.device("cpu"))
    greedy = greedy_search(bigram_step(table), (torch.zeros(1, 0),), 1, 4, torch.device("cpu"))
    got = [t for t in beam.tokens[0].tolist() if t != PAD_ID]
    assert got == best and beam.scores[0].item() == pytest.approx(best_score, abs=1e-5)
    assert greedy.scores[0].item() < best_score - 0.1  # the hand-built trap does catch greedy


@pytest.mark.parametrize("seed", range(5))
def test_beam_search_is_exact_on_random_bigram_models(seed):
    """A bigram model's state is its last token: a beam as wide as the vocabulary is exact."""
    g = torch.Generator().manual_seed(seed)
    v = 6
    table = torch.randn(v, v, generator=g).log_softmax(-1)
    table[:, PAD_ID] = table[:, BOS_ID] = -1e9
    table = table.log_softmax(-1)
    best, best_score = best_by_enumeration(table, 4)
    beam = beam_search(bigram_step(table), (torch.zeros(2 * v, 0),), 2, v, 4, torch.device("cpu"))
    for row in range(2):
        assert [t for t in beam.tokens[row].tolist() if t != PAD_ID] == best
        assert beam.scores[row].item() == pytest.approx(best_score, abs=1e-4)


def test_length_penalty_prefers_longer_hypotheses():
    p = torch.full((6, 6), 1e-9)
    p[BOS_ID, 4], p[BOS_ID, EOS_ID] = 0.45, 0.55
    p[4, 4], p[4, EOS_ID] = 0.9, 0.1
    p[PAD_ID, PAD_ID] = p[EOS_ID, PAD_ID] = 1.0
    table = (p / p.sum(1, keepdim=True)).log()
    plain = beam_search(bigram_step(table), (torch.zeros(2, 0),), 1, 2, 3, torch.device("cpu"))
    normed = beam_search(bigram_step(table), (torch.zeros(2, 0),), 1, 2, 3, torch.device("cpu"), length_penalty=1.0)
    assert plain.tokens[0, 0].item() == EOS_ID
    assert (normed.tokens[0] != PAD_ID).sum() > 1


def test_decoder_refuses_a_blind_setting():
    with pytest.raises(ConfigError, match="never sees the inputs"):
        RecurrentDecoder(7, ["a"], 4, 4, attention="none", init="zero")
    with pytest.raises(ConfigError, match="decoder.attention"):
        RecurrentDecoder(7, ["a"], 4, 4, attention="luong")


def test_lstm_decoder_runs_under_cpu_bf16_autocast():
    m = model("additive", "lstm").train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(batch(), target=target())
        decoded, _ = m.eval().generate(batch(), beam_size=2, max_length=4)
    assert torch.isfinite(out["logits"].float()).all() and decoded.tokens.shape[0] == 3


def test_transformer_encoders_offer_their_steps_as_memory():
    from fuselab.models.transformer import TransformerEncoder

    m = model("dot", encoder=partial(TransformerEncoder, hidden_size=12, num_layers=1, heads=2))
    decoded, memory = m.generate(batch(), beam_size=2, max_length=4)
    assert memory.values.shape == (3, 7 + 32, 12)
    assert decoded.attention[1, :, 5:7].abs().max() == 0  # the second sample's padding steps


def test_scheduled_sampling_feeds_the_models_own_tokens():
    m = model("additive").train()
    m.decoder.drop.p = 0.0  # no dropout: the two passes below must agree exactly
    t = target()
    forced = m(batch(), target=t, sampling=0.0)["logits"]
    own = m(batch(), target=t, sampling=1.0)["logits"]
    assert torch.allclose(forced[:, 0], own[:, 0])  # the first step always reads the start token
    # with p=1 the second step reads the first step's argmax instead of the reference token
    fed = t.clone()
    fed[:, 1] = torch.where(t[:, 1] != PAD_ID, forced[:, 0].argmax(-1), t[:, 1])
    assert torch.allclose(own[:, 1], m(batch(), target=fed, sampling=0.0)["logits"][:, 1], atol=1e-6)


def test_fused_initial_state_sets_both_the_lstm_hidden_and_cell_state():
    fused = torch.randn(3, 5)
    lstm = RecurrentDecoder(7, ["a"], 4, 5, cell="lstm", hidden_size=6, num_layers=2, attention="none")
    h, c = lstm.start(fused)
    assert h.shape == c.shape == (3, 2, 6)
    torch.testing.assert_close(c[:, 0], torch.tanh(lstm.to_c0(fused)))
    torch.testing.assert_close(h[:, 1], torch.tanh(lstm.to_h0(fused)))
    _, c_zero = RecurrentDecoder(7, ["a"], 4, 5, cell="lstm", hidden_size=6, init="zero").start(fused)
    assert not c_zero.any()
    gru = RecurrentDecoder(7, ["a"], 4, 5, cell="gru", hidden_size=6, attention="none")
    assert gru.to_c0 is None and gru.start(fused)[1].shape == (3, 0)


@pytest.mark.parametrize("fusion", ["early", "late", "hybrid", "crossmodal"])
def test_a_generation_target_needs_feature_fusion(fusion: str):
    """The decoder's initial state is fused by feature fusion's operator; other levels are refused
    by class (a subclass of FeatureFusion would pass)."""
    from conftest import compose_train

    from fuselab.data.specs import DataDescription
    from fuselab.models.build import build_model

    cfg = compose_train(["data=synthetic_generation", f"fusion={fusion}"])
    spec = ModalitySpec("signal", "sequence", (None, 4))
    data = DataDescription(
        {"signal": spec, "other": ModalitySpec("other", "sequence", (None, 3))},
        TargetSpec("generation", 8, vocabulary=("<pad>", "<bos>", "<eos>", "<unk>", "a", "b", "c", "d")),
        aligned=True,
    )
    with pytest.raises(ConfigError, match=r"a generation target is decoded from fusion=feature .* set fusion=feature"):
        build_model(cfg, data)


def test_the_decoder_group_is_one_node_and_a_legacy_node_still_builds():
    """``decoder`` builds a DecoderSettings (architecture, memory width, sampling, search); a
    stored node from before it had a _target_ builds the same settings."""
    from conftest import compose_train
    from omegaconf import OmegaConf

    from fuselab.models.build import decoder_settings
    from fuselab.models.decoder import DecoderSettings

    cfg = compose_train(["data=synthetic_generation", "decoder.search.beam_size=4", "decoder.attention=dot"])
    settings = decoder_settings(cfg)
    assert isinstance(settings, DecoderSettings) and settings.architecture["attention"] == "dot"
    assert settings.search == {"beam_size": 4, "max_length": 30, "length_penalty": 0.0}
    legacy = OmegaConf.to_container(cfg.decoder, resolve=True)
    legacy.pop("_target_")
    from fuselab.training.evaluate import upgrade_stored_config

    again = decoder_settings(OmegaConf.create(upgrade_stored_config({"decoder": legacy})))
    assert again.architecture == settings.architecture and again.search == settings.search
    assert again.memory_dim == settings.memory_dim and again.scheduled_sampling == settings.scheduled_sampling
