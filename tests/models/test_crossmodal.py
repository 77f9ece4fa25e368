"""MulT-style cross-modal attention: unaligned lengths, padding-invariant, honours absence."""

from __future__ import annotations

import pytest
import torch
from helpers import SPECS, make_model, random_batch

from fuselab.errors import ConfigError


def _model():
    model = make_model(["fusion=crossmodal", "fusion.dropout=0.0"], SPECS)
    return model.eval()


def _slice(batch: dict, i: int) -> dict:
    out = {}
    for m, mb in batch["inputs"].items():
        if mb.lengths is None:
            out[m] = mb._replace(x=mb.x[i : i + 1], present=mb.present[i : i + 1])
        else:
            n = int(mb.lengths[i])
            out[m] = mb._replace(x=mb.x[i : i + 1, :n], lengths=mb.lengths[i : i + 1], present=mb.present[i : i + 1])
    return out


def test_unaligned_batch_equals_each_sample_alone():
    model = _model()
    batch = random_batch(SPECS, [5, 2, 7], aligned=False)  # every modality its own lengths
    with torch.no_grad():
        batched = model(batch["inputs"])["logits"]
        for i in range(3):
            alone = model(_slice(batch, i))["logits"]
            torch.testing.assert_close(batched[i], alone[0], rtol=1e-4, atol=1e-5)
    assert batched.shape == (3, 4)


def test_an_absent_modality_contributes_nothing():
    model = _model()
    batch = random_batch(SPECS, [4, 3], absent={"tokens": [0]})
    other = {
        **batch["inputs"],
        "tokens": batch["inputs"]["tokens"]._replace(x=torch.randint(0, 32, batch["inputs"]["tokens"].x.shape)),
    }
    with torch.no_grad():
        a, b = model(batch["inputs"])["logits"], model(other)["logits"]
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a[0], b[0])  # sample 0 lacks tokens: their content does not matter
    assert not torch.allclose(a[1], b[1])


def test_it_trains_and_needs_several_modalities():
    model = make_model(["fusion=crossmodal"], SPECS)
    out = model(random_batch(SPECS, [4, 6], aligned=False)["inputs"])
    out["logits"].sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    with pytest.raises(ConfigError, match="fusion=crossmodal fuses several modalities"):
        make_model(["fusion=crossmodal"], {"signal": SPECS["signal"]})
