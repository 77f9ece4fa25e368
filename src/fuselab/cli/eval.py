"""``fuselab-eval ckpt_path=PATH``: re-evaluate a checkpoint; reproduces the run's test metrics.

The run's config and data description are read from the checkpoint, so nothing but the
checkpoint is needed. ``data.*`` overrides apply on top of the stored data config;
``drop=[image]`` evaluates with modalities marked absent; ``robustness.enabled=true`` adds the
noise and missing-modality curves. The job itself is :func:`fuselab.runs.job.eval_job`.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from fuselab.cli.common import check_command_line, report_metrics, run_guarded
from fuselab.runs.job import eval_job


@hydra.main(version_base="1.3", config_path="pkg://fuselab.conf", config_name="eval")
def _hydra_entry(cfg: DictConfig) -> None:
    result = run_guarded(eval_job, cfg, "fuselab-eval")
    if result is not None:
        report_metrics(result)


def main() -> None:
    check_command_line("fuselab-eval")
    _hydra_entry()


if __name__ == "__main__":
    sys.exit(main())
