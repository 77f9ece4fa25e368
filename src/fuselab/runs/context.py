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
    # one wandb group per sweep, named by the sweep directory (the job's parent) and, in fuselab's
    # layout <experiment>/multiruns/<sweep>/<job>, its experiment: a study's part is "<study>/<part>"
    group = _sweep_group(Path(hc.runtime.output_dir)) if multirun else hc.job.name
    n_jobs = hc.launcher.get("n_jobs") if multirun else None
    return {
        "overrides": list(hc.overrides.task),
        "choices": choices,
        "group": group,
        "multirun": multirun,
        "job_num": hc.job.num if multirun else None,
        "parallel_jobs": (os.cpu_count() or 1) if n_jobs == -1 else int(n_jobs or 1),
        **slurm_job(hc.launcher.get("submitit_folder")),
    }


def _sweep_group(job_dir: Path) -> str:
    sweep = job_dir.parent
    return f"{sweep.parent.parent.name}/{sweep.name}" if sweep.parent.name == "multiruns" else sweep.name


def slurm_job_id() -> str | None:
    """This SLURM job's id as squeue/scontrol name it (``<array>_<task>`` for an array job's
    task), or None outside SLURM."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else job


def slurm_job(submitit_folder: str | None) -> dict[str, Any]:
    """Inside a SLURM job: its id and, under the submitit launcher, its log files (stdout and
    stderr, the ones that exist), so a failed job's summary names where to read what happened."""
    job_id = slurm_job_id()
    if not job_id:
        return {}
    out: dict[str, Any] = {"slurm_job_id": job_id}
    if submitit_folder:
        folder = Path(str(submitit_folder).replace("%j", job_id))
        rank = os.environ.get("SLURM_PROCID", "0")
        logs = [folder / f"{job_id}_{rank}_log.{kind}" for kind in ("out", "err")]
        out["slurm_logs"] = [str(p) for p in logs if p.exists()]
    return out
