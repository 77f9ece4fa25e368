"""What the command-line entry points share: Hydra context, error handling, the final table."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from fuselab.errors import ConfigError

log = logging.getLogger("fuselab")
console = Console(stderr=False)


def hydra_context() -> dict[str, Any]:
    """Overrides, group choices, sweep group and job number of the current Hydra job (empty
    outside Hydra, e.g. under the compose API in tests)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return {"overrides": [], "choices": {}, "group": "default", "multirun": False, "job_num": None,
                "parallel_jobs": 1}  # fmt: skip
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


def run_guarded(fn: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> dict[str, Any] | None:
    """Run ``fn``; a user's mistake exits with a one-line message (code 2). In a multirun a failed
    job is recorded (summary.json says failed) and the sweep goes on."""
    multirun = hydra_context()["multirun"]
    try:
        return fn(cfg)
    except ConfigError as exc:
        console.print(f"[bold red]fuselab: error:[/] {exc}", highlight=False, soft_wrap=True)
        if multirun:
            return None
        sys.exit(2)
    except Exception:
        if multirun:
            log.exception("job failed; the sweep goes on (see its summary.json)")
            return None
        raise


def report_metrics(summary: dict[str, Any]) -> None:
    if summary.get("skipped"):
        console.print(f"skipped: completed earlier in {summary.get('run_dir')}", highlight=False, soft_wrap=True)
        return
    table = Table(title=f"fuselab: {summary.get('status')} in {summary.get('wall_time_s', 0):.1f}s")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in sorted((summary.get("metrics") or {}).items()):
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)
    console.print(f"outputs:  {summary.get('run_dir')}", highlight=False, soft_wrap=True)
    if summary.get("best_checkpoint"):
        console.print(f"best checkpoint: {summary['best_checkpoint']}", highlight=False, soft_wrap=True)
    run_dir = Path(str(summary.get("run_dir", ".")))
    if any(run_dir.glob("wandb/offline-run-*")):
        console.print(f"upload to wandb:  wandb sync {run_dir}/wandb/offline-run-*", highlight=False, soft_wrap=True)
