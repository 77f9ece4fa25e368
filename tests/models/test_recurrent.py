"""The recurrent encoder: padding never changes a result, every precision works on CPU."""

from __future__ import annotations

import pytest
import torch

from fuselab.config.choices import POOLINGS
from fuselab.models.recurrent import CELLS, RecurrentEncoder


def _encoder(cell: str, pooling: str, bidirectional: bool = False, layers: int = 1) -> RecurrentEncoder:
    torch.manual_seed(0)
    return RecurrentEncoder(
        5, cell=cell, hidden_size=7, num_layers=layers, bidirectional=bidirectional, pooling=pooling
    ).eval()


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("pooling", list(POOLINGS))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_variable_length_batch_equals_unpadded_samples(cell: str, pooling: str, bidirectional: bool):
    enc = _encoder(cell, pooling, bidirectional, layers=2)
    lengths = torch.tensor([6, 2, 4])
    x = torch.randn(3, 9, 5)  # padded to 9 with garbage: it must be ignored
    with torch.no_grad():
        batched, outputs, mask = enc(x, lengths)
        for i, n in enumerate(lengths.tolist()):
            alone, _, _ = enc(x[i : i + 1, :n], lengths[i : i + 1])
            torch.testing.assert_close(batched[i], alone[0], rtol=1e-5, atol=1e-6)
    assert batched.shape == (3, enc.out_dim) and enc.out_dim == 7 * (2 if bidirectional else 1)
    assert mask.sum(1).tolist() == lengths.tolist()


@pytest.mark.parametrize("cell", list(CELLS))
def test_cpu_autocast_bf16_runs_the_recurrence_in_fp32(cell: str, monkeypatch: pytest.MonkeyPatch):
    enc = _encoder(cell, "last")
    seen = {}
    original = enc.rnn.forward

    def spy(inp, hx=None):
        seen["autocast"] = torch.is_autocast_enabled("cpu")
        seen["dtype"] = inp.data.dtype
        return original(inp, hx)

    monkeypatch.setattr(enc.rnn, "forward", spy)
    x, lengths = torch.randn(4, 6, 5), torch.tensor([6, 3, 2, 5])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _, _ = enc(x.bfloat16(), lengths)
    assert seen == {"autocast": False, "dtype": torch.float32}
    assert torch.isfinite(out).all()
    reference, _, _ = enc(x.bfloat16().float(), lengths)
    torch.testing.assert_close(out.float(), reference, rtol=1e-5, atol=1e-6)


def test_initial_state_changes_the_output():
    enc = _encoder("lstm", "last")
    x, lengths = torch.randn(2, 4, 5), torch.tensor([4, 2])
    h0 = torch.randn(2, 7)
    a, _, _ = enc(x, lengths)
    b, _, _ = enc(x, lengths, h0=h0)
    assert not torch.allclose(a, b)


def test_every_parameter_gets_a_gradient():
    enc = _encoder("gru", "attention", bidirectional=True, layers=2).train()
    out, _, _ = enc(torch.randn(3, 5, 5), torch.tensor([5, 3, 1]))
    out.pow(2).sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_cell_and_pooling_name_the_choices():
    with pytest.raises(ValueError, match=r"rnn.cell='transformer' is not one of \['rnn', 'lstm', 'gru'\]"):
        RecurrentEncoder(3, cell="transformer")
    with pytest.raises(ValueError, match="rnn.pooling='median'"):
        RecurrentEncoder(3, pooling="median")
