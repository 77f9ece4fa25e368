"""The Hydra callback of every multirun (``conf/hydra/default.yaml``): at its start, fixes the
sweep's directory name for every job (:func:`fuselab.runs.resolvers.sweep_id`); at its end, says
how many jobs completed or failed, prints the comparison table and the commands that follow."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fuselab.errors import ConfigError
from fuselab.runs.resolvers import SWEEP_ENV, sweep_id
from fuselab.runs.sweep import sweep_summaries
from fuselab.training.summary import DID_NOT_COMPLETE


class SweepReport(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ.pop(SWEEP_ENV, None)
        os.environ[SWEEP_ENV] = sweep_id(list(config.hydra.overrides.task), config.get("sweep_name"))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from rich.console import Console

        from fuselab.reports.compare import compare_runs, print_table

        sweep_dir = Path(str(config.hydra.sweep.dir))
        literal = sweep_dir / ".submitit" / "%j"  # submitit's local executor makes it, and leaves it empty
        if literal.is_dir() and not any(literal.iterdir()):
            literal.rmdir()
        summaries = sweep_summaries(sweep_dir)
        counts: dict[str, int] = {}
        for s in summaries:
            counts[str(s.status)] = counts.get(str(s.status), 0) + 1
        console = Console()
        console.print(f"sweep {sweep_dir}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())), markup=False)
        failed = [s for s in summaries if s.status in DID_NOT_COMPLETE]
        for s in failed:
            console.print(f"  {s.status}: {s.run_dir}: {s.error or ''}", markup=False, soft_wrap=True)
        if summaries:
            try:
                print_table(compare_runs([sweep_dir]), console)
            except ConfigError as exc:  # nothing comparable (e.g. every job failed)
                console.print(f"no comparison: {exc}", markup=False)
        if any(sweep_dir.glob("*/wandb/offline-run-*")):
            console.print(
                f"upload the wandb runs with:  wandb sync {sweep_dir}/*/wandb/offline-run-*",
                soft_wrap=True,
                markup=False,
            )
        console.print(f"compare again with:  fuselab-compare {sweep_dir}", soft_wrap=True, markup=False)
        if failed:
            # the sweep's exit status says what its jobs did (2 stays the user's mistake in the command)
            console.print(
                f"{len(failed)} of {len(summaries)} jobs did not complete: exit status 1 "
                "(the same command re-runs only those)",
                markup=False,
                soft_wrap=True,
            )
            raise SystemExit(1)
