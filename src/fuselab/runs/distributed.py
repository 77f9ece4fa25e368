"""DDP that is correct inside a Hydra multirun.

Lightning's ``ddp`` starts ranks 1..N-1 by re-running ``sys.argv``; under ``-m`` that is the
whole sweep (each rank would run every job, and with a sampling sweeper such as Optuna the
ranks would train different hyperparameters). Here each rank re-runs only the current job:
``python -m fuselab.cli.train <this job's overrides> hydra.run.dir=<this job's directory>``.
After a job, the process group is destroyed and the DDP environment variables are restored,
so the next job of the sweep starts its own ranks.

The swap reaches into Lightning internals (``subprocess_script._hydra_subprocess_cmd``,
``_SubprocessScriptLauncher``, ``DDPStrategy._configure_launcher``); pyproject caps
pytorch-lightning at the major release this was tested with, :func:`check_internals` refuses
clearly when they are gone, and ``tests/runs/test_distributed.py`` fails loudly in that case.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.strategies.launchers import subprocess_script
from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

# strategy names whose launcher re-runs the script (the others fork or spawn and are safe)
SUBPROCESS_DDP = {"ddp": False, "ddp_find_unused_parameters_true": True}


def check_internals() -> None:
    """Raise when the Lightning internals the job launcher replaces are gone (a newer release)."""
    import pytorch_lightning as pl

    missing = [
        name
        for name, ok in (
            ("subprocess_script._hydra_subprocess_cmd", hasattr(subprocess_script, "_hydra_subprocess_cmd")),
            (
                "_SubprocessScriptLauncher._call_children_scripts",
                hasattr(_SubprocessScriptLauncher, "_call_children_scripts"),
            ),
            ("DDPStrategy._configure_launcher", hasattr(DDPStrategy, "_configure_launcher")),
        )
        if not ok
    ]
    if missing:
        raise RuntimeError(
            f"pytorch-lightning {pl.__version__} no longer has {missing}, which fuselab's DDP-inside-a-multirun "
            "launcher replaces. Install the pytorch-lightning version pyproject.toml allows, or use "
            "trainer.strategy=ddp_spawn (or ddp_fork)."
        )


def job_command(local_rank: int, module: str = "fuselab.cli.train") -> tuple[Sequence[str], str]:
    """The command that starts ``local_rank`` of the current Hydra job, and its cwd."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    command = [sys.executable, "-m", module, *hc.overrides.task]
    command += [
        f'hydra.run.dir="{hc.runtime.output_dir}"',
        f"hydra.job.name=train_ddp_process_{local_rank}",
        "hydra.output_subdir=null",
    ]
    return command, hc.runtime.cwd


class JobLauncher(_SubprocessScriptLauncher):
    """Lightning's subprocess launcher, but the children run this job, not the whole command."""

    def _call_children_scripts(self) -> None:
        original = subprocess_script._hydra_subprocess_cmd
        subprocess_script._hydra_subprocess_cmd = job_command
        try:
            super()._call_children_scripts()
        finally:
            subprocess_script._hydra_subprocess_cmd = original


class JobDDPStrategy(DDPStrategy):
    """``strategy: ddp`` in fuselab: DDP whose ranks always run the current job."""

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if isinstance(self._launcher, _SubprocessScriptLauncher):
            self._launcher = JobLauncher(self.cluster_environment, self.num_processes, self.num_nodes)


def resolve_strategy(strategy: object) -> object:
    """Swap the re-running DDP strategies for :class:`JobDDPStrategy`; others pass through."""
    if isinstance(strategy, str) and strategy in SUBPROCESS_DDP:
        check_internals()
        return JobDDPStrategy(find_unused_parameters=SUBPROCESS_DDP[strategy])
    return strategy


def split_threads(parallel_jobs: int) -> None:
    """Jobs run side by side (joblib) share the cores instead of each taking all of them."""
    if parallel_jobs > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // parallel_jobs))


DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "GLOBAL_RANK", "RANK")


@contextmanager
def isolated_job() -> Iterator[None]:
    """Leave no DDP state behind for the next job of a sweep."""
    saved = {k: os.environ.get(k) for k in DDP_ENV}
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
