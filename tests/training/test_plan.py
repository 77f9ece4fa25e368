"""An evaluation plan is passed in for the calls that use it and never outlives them."""

from __future__ import annotations

import pytest
import torch

from fuselab.data.specs import ModalityBatch
from fuselab.training.plan import NO_PLAN, EvaluationPlan


def _inputs() -> dict[str, ModalityBatch]:
    x = torch.ones(3, 2)
    return {m: ModalityBatch(x=x, lengths=None, present=torch.ones(3, dtype=torch.bool)) for m in ("a", "b")}


def test_a_plan_applies_inside_the_block_and_is_gone_after_it(tiny_task):
    task = tiny_task
    seen = []
    plan = EvaluationPlan(absent=("b",), perturbation=lambda inputs: seen.append(1) or inputs)
    with task.evaluating(plan):
        inputs = task._inputs(_inputs(), "test")
        assert inputs["b"].present.sum() == 0 and inputs["a"].present.all() and seen == [1]
        assert task._inputs(_inputs(), "val")["b"].present.sum() == 0 and seen == [1]  # noise: test only
        assert task._inputs(_inputs(), "train")["b"].present.all()  # training never sees the plan
    assert task.plan is NO_PLAN
    with pytest.raises(RuntimeError), task.evaluating(plan):
        raise RuntimeError("a failed evaluation")
    assert task.plan is NO_PLAN and task._inputs(_inputs(), "test")["b"].present.all()


@pytest.fixture
def tiny_task():
    from fuselab.data.specs import DataDescription, ModalitySpec, TargetSpec
    from fuselab.training.module import FusionTask

    data = DataDescription({m: ModalitySpec(m, "vector", (2,)) for m in ("a", "b")}, TargetSpec("multiclass", 2))
    return FusionTask(torch.nn.Linear(2, 2), data, optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
