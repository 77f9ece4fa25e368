"""Where the current job runs: its Hydra context and its process rank (no torch here)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def process_rank() -> int:
    """This process's global rank from the launcher's environment (as Lightning reads it)."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    return 0


def hydra_context() -> dict[str, Any]:
    """Overrides, group choices, sweep group and job number of the current Hydra job (empty
    outside Hydra, e.g. under the compose API in tests)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return {
            "overrides": [],
            "choices": {},
            "group": "default",
            "multirun": False,
            "job_num": None,
            "parallel_jobs": 1,
        }
    hc = HydraConfig.get()
    choices = {k: str(v) for k, v in hc.runtime.choices.items() if not k.startswith("hydra") and v is not None}
    multirun = hc.mode == RunMode.MULTIRUN
    # one wandb group per sweep: the sweep directory (the job's parent) names it
    group = Path(hc.runtime.output_dir).parent.name if multirun else hc.job.name
    n_jobs = hc.launcher.get("n_jobs") if multirun else None
    return {
        "overrides": list(hc.overrides.task),
        "choices": choices,
        "group": group,
        "multirun": multirun,
        "job_num": hc.job.num if multirun else None,
        "parallel_jobs": (os.cpu_count() or 1) if n_jobs == -1 else int(n_jobs or 1),
    }
