"""``fuselab-train``: fit a fusion model, test its best checkpoint, write ``summary.json``.

    fuselab-train fusion=late rnn=lstm data.modalities=[signal,image] seed=3
    fuselab-train -m fusion=early,feature,late rnn=rnn,lstm,gru

The job itself is :func:`fuselab.runs.job.train_job`.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

# Only light modules at import time: a wrong value must fail before torch and Lightning load.
from fuselab.cli.common import check_command_line, report_metrics, run_guarded
from fuselab.runs.context import process_rank
from fuselab.runs.job import train_job


@hydra.main(version_base="1.3", config_path="pkg://fuselab.conf", config_name="train")
def _hydra_entry(cfg: DictConfig) -> float | None:
    result = run_guarded(train_job, cfg, "fuselab-train")
    if result is None:
        return float("nan")  # a failed job: a sweeper (Optuna) records a failed trial and goes on
    if process_rank() == 0:
        report_metrics(result)
    monitor = result.get("monitor")
    return result.get("metrics", {}).get(monitor) if monitor else None


def main() -> None:
    check_command_line("fuselab-train")
    _hydra_entry()


if __name__ == "__main__":
    sys.exit(main())
