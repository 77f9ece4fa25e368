"""Fusion levels: shapes, gradients, masking, and the impossible combinations."""

from __future__ import annotations

import pytest
import torch

from helpers import SPECS, TASK, make_model, random_batch

LEVELS = [["fusion=early"], ["fusion=feature"], ["fusion=feature", "fusion.operator=sum"], ["fusion=late"]]
CELLS = ["rnn", "lstm", "gru"]


def ids(levels):
    return "-".join(o.split("=")[1] for o in levels)


@pytest.mark.parametrize("level", LEVELS, ids=ids)
@pytest.mark.parametrize("cell", CELLS)
def test_shapes_and_every_parameter_learns(level, cell):
    model = make_model(level, SPECS, cell=cell)
    batch = random_batch(SPECS, [5, 3, 7, 2])
    out = model(batch["inputs"])
    assert out["logits"].shape == (4, TASK.num_outputs)
    torch.nn.functional.cross_entropy(out["logits"], batch["target"]).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} got no gradient"


@pytest.mark.parametrize("level", LEVELS, ids=ids)
def test_a_sample_ignores_the_rest_of_its_batch(level):
    model = make_model(level, SPECS).eval()
    base = random_batch(SPECS, [5, 3, 4], seed=1)
    longer = random_batch(SPECS, [5, 3, 4], seed=1)
    # sample 2 made absent in every modality but one, and another batch padded much longer
    masked = random_batch(SPECS, [5, 3, 4], seed=1, absent={"signal": [2], "image": [2], "vec": [2]})
    with torch.no_grad():
        ref = model(base["inputs"])["logits"]
        out = model(masked["inputs"])["logits"]
        torch.testing.assert_close(out[:2], ref[:2])
        padded = {m: mb._replace(x=torch.nn.functional.pad(mb.x, (0, 0, 0, 6) if mb.x.ndim == 3 else (0, 6)))
                  if mb.lengths is not None else mb for m, mb in longer["inputs"].items()}  # fmt: skip
        torch.testing.assert_close(model(padded)["logits"], ref, rtol=1e-5, atol=1e-6)


def test_late_mean_uses_only_present_heads():
    model = make_model(["fusion=late"], SPECS).eval()
    batch = random_batch(SPECS, [4, 4], absent={"image": [0], "vec": [0]})
    with torch.no_grad():
        out = model(batch["inputs"])
    per = out["aux_logits"]
    torch.testing.assert_close(out["logits"][0], (per["signal"][0] + per["tokens"][0]) / 2)
    torch.testing.assert_close(out["logits"][1], sum(per[m][1] for m in SPECS) / 4)


def test_early_on_unaligned_sequences_names_the_alignment_option():
    with pytest.raises(ValueError, match="Set fusion.align=resample"):
        make_model(["fusion=early"], SPECS, aligned=False)
    model = make_model(["fusion=early", "fusion.align=resample"], SPECS, aligned=False)
    out = model(random_batch(SPECS, [5, 3], aligned=False)["inputs"])
    assert out["logits"].shape == (2, 4)


def test_early_without_a_sequence_is_refused():
    static = {m: SPECS[m] for m in ("image", "vec")}
    with pytest.raises(ValueError, match="needs at least one sequence or tokens modality"):
        make_model(["fusion=early"], static)


def test_unimodal_feature_fusion_is_a_baseline():
    only = {"signal": SPECS["signal"]}
    for level in (["fusion=feature"], ["fusion=late"], ["fusion=early"]):
        model = make_model(level, only)
        assert model(random_batch(only, [3, 2])["inputs"])["logits"].shape == (2, 4)


def test_resample_maps_steps_proportionally():
    from fuselab.models.fusion.early import resample_steps

    x = torch.arange(4.0).reshape(1, 4, 1)  # steps 0..3 of a length-4 sequence
    out = resample_steps(x, torch.tensor([4]), torch.tensor([8]), total=8)
    assert out.squeeze().tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
