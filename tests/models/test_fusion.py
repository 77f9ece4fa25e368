"""Fusion levels: shapes, gradients, masking, and the impossible combinations."""

from __future__ import annotations

import pytest
import torch
from helpers import SPECS, TASK, make_model, random_batch

from fuselab.errors import ConfigError

OPERATORS = ["concat", "sum", "attention", "gated", "tensor", "lowrank"]
LEVELS = (
    [["fusion=early"]]
    + [["fusion=feature", f"fusion.operator={op}"] for op in OPERATORS]
    + [["fusion=late", f"fusion.combine={c}"] for c in ("mean", "weighted", "poe")]
    + [["fusion=hybrid", "fusion.operator=tensor", "fusion.combine=weighted"], ["fusion=hybrid"]]
    + [["fusion=conditioned", f"fusion.mode={mode}"] for mode in ("init", "add", "both")]
)
CELLS = ["rnn", "lstm", "gru"]


def ids(levels):
    return "-".join(o.split("=")[1] for o in levels)


@pytest.mark.parametrize("level", LEVELS, ids=ids)
def test_every_parameter_learns_with_a_bidirectional_attention_encoder(level):
    cfg_extra = ["rnn.bidirectional=true", "rnn.pooling=attention", "rnn.num_layers=2"]
    model = make_model([*level, *cfg_extra], SPECS, cell="lstm")
    batch = random_batch(SPECS, [4, 6, 3])
    torch.nn.functional.cross_entropy(model(batch["inputs"])["logits"], batch["target"]).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


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
        padded = {
            m: mb._replace(x=torch.nn.functional.pad(mb.x, (0, 0, 0, 6) if mb.x.ndim == 3 else (0, 6)))
            if mb.lengths is not None
            else mb
            for m, mb in longer["inputs"].items()
        }
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
    for operator in ("concat", "sum"):
        model = make_model(["fusion=feature", f"fusion.operator={operator}"], only)
        assert model(random_batch(only, [3, 2])["inputs"])["logits"].shape == (2, 4)


@pytest.mark.parametrize("level", ["late", "hybrid", "early"])
def test_levels_that_fuse_refuse_a_single_modality(level: str):
    with pytest.raises(ConfigError, match=f"fusion={level} fuses several modalities.*use fusion=feature"):
        make_model([f"fusion={level}"], {"signal": SPECS["signal"]})


def test_resample_maps_steps_proportionally():
    from fuselab.models.fusion.early import resample_steps

    x = torch.arange(4.0).reshape(1, 4, 1)  # steps 0..3 of a length-4 sequence
    out = resample_steps(x, torch.tensor([4]), torch.tensor([8]), total=8)
    assert out.squeeze().tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_attention_weights_cover_present_modalities_only():
    model = make_model(["fusion=feature", "fusion.operator=attention"], SPECS).eval()
    batch = random_batch(SPECS, [3, 3], absent={"image": [0]})
    weights = model(batch["inputs"])["weights"]
    assert set(weights) == set(SPECS)
    assert weights["image"][0] == 0 and weights["image"][1] > 0
    torch.testing.assert_close(sum(weights.values()), torch.ones(2))


def test_tensor_product_size_is_limited_with_the_fix():
    with pytest.raises(ValueError, match=r"Set fusion.tensor_dim<=\d+, use fusion.operator=lowrank"):
        make_model(["fusion=feature", "fusion.operator=tensor", "fusion.tensor_dim=64"], SPECS)


def test_tensor_fusion_keeps_unimodal_terms():
    from fuselab.models.fusion.operators import TensorFusion

    op = TensorFusion({"a": 2, "b": 3}, dim=2)
    z = {"a": torch.randn(1, 2), "b": torch.randn(1, 3)}
    out, weights = op(z, torch.tensor([[1.0, 0.0]]))  # b absent: the product is [h_a, 1] x [0, 0, 1]
    assert weights is None  # the tensor product weighs no modality
    ha = op.proj["a"](z["a"])
    expected = torch.einsum("bi,bj->bij", torch.cat([ha, torch.ones(1, 1)], 1), torch.tensor([[0.0, 0.0, 1.0]]))
    torch.testing.assert_close(out, expected.flatten(1))


def test_lowrank_factors_are_registered_parameters():
    model = make_model(["fusion=feature", "fusion.operator=lowrank"], SPECS)
    names = {n for n, _ in model.named_parameters()}
    assert {f"body.fuse.factors.{m}" for m in SPECS} <= names


def test_poe_multiplies_the_experts():
    model = make_model(["fusion=late", "fusion.combine=poe"], SPECS).eval()
    batch = random_batch(SPECS, [3])
    with torch.no_grad():
        out = model(batch["inputs"])
    probs = torch.stack([torch.softmax(head, -1) for head in out["aux_logits"].values()]).prod(0)
    torch.testing.assert_close(torch.softmax(out["logits"], -1), probs / probs.sum(-1, keepdim=True))


@pytest.mark.parametrize("operator", ["attention", "gated", "tensor", "lowrank"])
def test_multimodal_operator_on_one_modality_names_the_fix(operator):
    with pytest.raises(ValueError, match="Use fusion.operator=concat for a unimodal baseline"):
        make_model(["fusion=feature", f"fusion.operator={operator}"], {"signal": SPECS["signal"]})


def test_conditioned_needs_a_static_and_a_sequence_modality():
    with pytest.raises(ValueError, match="needs a static modality"):
        make_model(["fusion=conditioned"], {m: SPECS[m] for m in ("signal", "tokens")})
    with pytest.raises(ValueError, match="needs a sequence or tokens modality"):
        make_model(["fusion=conditioned"], {m: SPECS[m] for m in ("image", "vec")})
    with pytest.raises(ValueError, match="fusion.condition='signal' is not a static modality"):
        make_model(["fusion=conditioned", "fusion.condition=signal"], SPECS)


@pytest.mark.parametrize("mode", ["init", "add", "both"])
def test_conditioning_changes_the_sequence_encoding(mode):
    model = make_model(["fusion=conditioned", f"fusion.mode={mode}", "fusion.condition=vec"], SPECS).eval()
    a = random_batch(SPECS, [4, 4], seed=1)
    b = random_batch(SPECS, [4, 4], seed=1)
    b["inputs"]["vec"] = b["inputs"]["vec"]._replace(x=b["inputs"]["vec"].x + 1.0)
    with torch.no_grad():
        assert not torch.allclose(model(a["inputs"])["logits"], model(b["inputs"])["logits"])


@pytest.mark.parametrize("name", ["attention", "gated"])
def test_weighing_operators_return_their_weights_and_keep_no_state(name: str):
    """The weights come back with the fused vector (summing to 1 over the present modalities);
    the operator holds nothing between calls."""
    from fuselab.models.fusion.operators import OPERATORS

    op = OPERATORS[name]({"a": 2, "b": 3, "c": 4}, dim=5)
    z = {"a": torch.randn(4, 2), "b": torch.randn(4, 3), "c": torch.randn(4, 4)}
    present = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    before = set(vars(op))
    fused, weights = op(z, present)
    assert fused.shape == (4, 5) and weights.shape == (4, 3)
    torch.testing.assert_close(weights.sum(1), torch.ones(4))
    assert torch.all(weights[present == 0] == 0)
    assert set(vars(op)) == before
