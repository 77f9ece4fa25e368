"""The Transformer baseline keeps the recurrent encoder's contract: padding never changes a
result, the same poolings, an initial state, every precision on CPU, and any fusion level."""

from __future__ import annotations

import pytest
import torch
from helpers import SPECS, make_model, random_batch

from fuselab.config.choices import POOLINGS
from fuselab.errors import ConfigError
from fuselab.models.transformer import TransformerEncoder


def _encoder(pooling: str) -> TransformerEncoder:
    torch.manual_seed(0)
    return TransformerEncoder(5, hidden_size=8, num_layers=2, heads=2, pooling=pooling).eval()


@pytest.mark.parametrize("pooling", list(POOLINGS))
def test_padding_never_changes_a_result(pooling: str):
    enc = _encoder(pooling)
    lengths = torch.tensor([6, 2, 4])
    x = torch.randn(3, 9, 5)  # padded to 9 with garbage
    with torch.no_grad():
        batched, outputs, mask = enc(x, lengths)
        for i, n in enumerate(lengths.tolist()):
            alone, _, _ = enc(x[i : i + 1, :n], lengths[i : i + 1])
            torch.testing.assert_close(batched[i], alone[0], rtol=1e-5, atol=1e-5)
    assert batched.shape == (3, 8) and outputs.shape == (3, 9, 8)
    assert (outputs[~mask] == 0).all()


def test_initial_state_enters_as_a_token_and_changes_the_output():
    enc = _encoder("last")
    x, lengths = torch.randn(2, 4, 5), torch.tensor([4, 2])
    with torch.no_grad():
        plain, out, _ = enc(x, lengths)
        conditioned, out_h0, _ = enc(x, lengths, h0=torch.randn(2, 8))
    assert out_h0.shape == out.shape and not torch.allclose(plain, conditioned)


def test_bf16_autocast_on_cpu_runs():
    enc = _encoder("attention")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _, _ = enc(torch.randn(4, 6, 5), torch.tensor([6, 3, 1, 5]))
    assert torch.isfinite(out.float()).all()


def test_settings_it_cannot_honour_are_refused():
    with pytest.raises(ConfigError, match="set rnn.bidirectional=false"):
        TransformerEncoder(5, bidirectional=True)
    with pytest.raises(ConfigError, match="multiple of rnn.heads=3"):
        TransformerEncoder(5, hidden_size=8, heads=3)


@pytest.mark.parametrize("level", [["fusion=early"], ["fusion=feature"], ["fusion=late"], ["fusion=conditioned"]])
def test_every_fusion_level_builds_with_it_and_accepts_unaligned_lengths(level: list[str]):
    model = make_model(level, SPECS, aligned=True, cell="transformer")
    batch = random_batch(SPECS, [4, 6, 3], aligned=level == ["fusion=early"])
    out = model(batch["inputs"])
    assert out["logits"].shape == (3, 4)
    out["logits"].sum().backward()
