"""What an evaluation does to a trained task, passed in as one value instead of attributes set
on a live module: the modalities marked absent, a perturbation of the test inputs, and a list
that collects each test batch's outputs. ``with task.evaluating(plan):`` applies it for the
calls inside and restores the task's own plan (none) afterwards, whatever they raise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fuselab.data.specs import ModalityBatch

Inputs = dict[str, ModalityBatch]


@dataclass(frozen=True)
class EvaluationPlan:
    # modalities marked absent for every evaluated sample (fuselab-eval drop=[...], robustness)
    absent: tuple[str, ...] = ()
    # applied to the test inputs (robustness noise)
    perturbation: Callable[[Inputs], Inputs] | None = None
    # when a list: each test batch's outputs are appended to it (fuselab-eval save_predictions=true)
    collected: list[dict[str, Any]] | None = None


NO_PLAN = EvaluationPlan()
