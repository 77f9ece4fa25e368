"""``fuselab-train``: fit a fusion model, test its best checkpoint, write ``summary.json``.

    fuselab-train fusion=late rnn=lstm data.modalities=[signal,image] seed=3
    fuselab-train -m fusion=early,feature,late rnn=rnn,lstm,gru
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

# Only light modules at import time: a wrong value must fail before torch and Lightning load.
from fuselab import __version__
from fuselab.cli import hydra_context, report_metrics, run_guarded
from fuselab.config import to_plain, validate_train_config
from fuselab.errors import ConfigError
from fuselab.names import process_rank
from fuselab.summary import SUMMARY, RunSummary, read_summary, write_json
from fuselab.sweep import archive_previous_attempt, config_hash, find_resume_checkpoint, previous_outcome

log = logging.getLogger("fuselab.train")


MIN_FREE_MB = 200


def _writable(out_dir: Path) -> None:
    """Fail before any work if the run directory cannot be written or its disk is (nearly) full."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to the output directory {out_dir} ({exc}); set paths.log_dir=<dir>") from exc
    free_mb = shutil.disk_usage(out_dir).free / 2**20
    if free_mb < MIN_FREE_MB:
        raise ConfigError(
            f"only {free_mb:.0f} MB free on the disk of {out_dir} (checkpoints need more than {MIN_FREE_MB} MB); "
            "free some space or set paths.log_dir=<dir on another disk>"
        )


def _metrics(results: list[dict[str, float]]) -> dict[str, float]:
    merged: dict[str, float] = {}
    for r in results:
        merged.update({k: float(v) for k, v in r.items()})
    return merged


def _split_threads(parallel_jobs: int) -> None:
    """Jobs run side by side (joblib) share the cores instead of each taking all of them."""
    import torch

    if parallel_jobs > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // parallel_jobs))


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one job from a composed config; returns its summary (also written to summary.json).
    In a multirun, a job that already completed with the same config is skipped."""
    validate_train_config(cfg)
    out_dir = Path(cfg.paths.output_dir)
    _writable(out_dir)
    ctx = hydra_context()
    chash = config_hash(cfg)
    is_zero = process_rank() == 0
    if is_zero and ctx["multirun"] and cfg.get("skip_completed", True):
        previous = previous_outcome(out_dir, chash)
        if previous is not None:
            log.info("skipping %s: %s earlier with the same config", out_dir, previous["status"])
            return {**previous, "skipped": True}
        archive_previous_attempt(out_dir)
    resume = _resume_checkpoint(cfg, out_dir, chash)
    parallel = ctx.pop("parallel_jobs")
    summary = RunSummary(out_dir, fuselab_version=__version__, config_hash=chash, pid=os.getpid(),
                         host=socket.gethostname(), **ctx)  # fmt: skip
    if is_zero:
        summary.write()
    try:
        from fuselab.distributed import isolated_job

        with isolated_job():
            _split_threads(parallel)
            _fit_and_test(cfg, ctx, summary, resume)
    except BaseException as exc:
        if is_zero:
            summary.failed(exc)
        raise
    if is_zero:
        summary.completed()
    return summary.data


def _resume_checkpoint(cfg: DictConfig, out_dir: Path, chash: str) -> str | None:
    """``resume=auto``: continue the latest interrupted run of the same config from its
    last.ckpt (model, optimizer, scheduler, loop and RNG state); else ``ckpt_path``."""
    if str(cfg.get("resume") or "").lower() != "auto":
        return cfg.get("ckpt_path")
    found = find_resume_checkpoint(out_dir, chash)
    if found is None:
        log.info("resume=auto: no interrupted run of this config to continue; starting afresh")
        return cfg.get("ckpt_path")
    ckpt, run_dir = found
    log.info("resume=auto: continuing %s from %s", run_dir, ckpt)
    if process_rank() == 0 and run_dir.parent == out_dir.parent:
        # the interrupted run points to its continuation (it no longer reads "running")
        write_json(run_dir / SUMMARY, {**(read_summary(run_dir) or {}), "status": "resumed", "resumed_in": str(out_dir)})
    return str(ckpt)


def _fit_and_test(cfg: DictConfig, ctx: dict[str, Any], summary: RunSummary, resume: str | None) -> None:
    import pytorch_lightning as pl

    from fuselab.builders import (
        RankReport,
        build_callbacks,
        build_datamodule,
        build_loggers,
        build_task,
        build_trainer,
        checkpoint_callback,
        finish_loggers,
    )

    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    dm = build_datamodule(cfg.data)
    task = build_task(cfg, dm, config=to_plain(cfg))
    loggers = build_loggers(cfg, ctx["choices"], list(dm.modalities), group=ctx["group"])
    callbacks = build_callbacks(cfg, dm.task, with_logger=bool(loggers))
    callbacks.append(RankReport(ctx["overrides"], summary.data["config_hash"]))
    trainer = build_trainer(cfg, callbacks, loggers)

    if cfg.get("fit", True):
        summary.update(resumed_from=resume)
        trainer.fit(task, datamodule=dm, ckpt_path=resume)
    # Read the checkpoint paths now: validate/test below restore the callback's state
    # from the best checkpoint, which predates the last one.
    ckpt = checkpoint_callback(trainer)
    best = (ckpt.best_model_path or None) if ckpt else None
    last = (ckpt.last_model_path or None) if ckpt else None
    monitor = ckpt.monitor if ckpt else None
    if not cfg.get("fit", True):
        best = cfg.get("ckpt_path")
    metrics: dict[str, float] = {}
    metrics.update(_metrics(trainer.validate(task, datamodule=dm, ckpt_path=best, verbose=False)))
    if cfg.get("test", True):
        metrics.update(_metrics(trainer.test(task, datamodule=dm, ckpt_path=best, verbose=False)))
    summary.update(
        metrics=metrics,
        epochs=trainer.current_epoch,
        best_checkpoint=best,
        last_checkpoint=last,
        monitor=monitor,
        modalities=list(dm.modalities),
        num_parameters=sum(p.numel() for p in task.parameters()),
    )
    finish_loggers(loggers, metrics, monitor)


@hydra.main(version_base="1.3", config_path="pkg://fuselab.conf", config_name="train")
def _hydra_entry(cfg: DictConfig) -> float | None:
    result = run_guarded(train, cfg)
    if result is None:
        return float("nan")  # a failed job: a sweeper (Optuna) records a failed trial and goes on
    if process_rank() == 0:
        report_metrics(result)
    monitor = result.get("monitor")
    return result.get("metrics", {}).get(monitor) if monitor else None


def main() -> None:
    _hydra_entry()


if __name__ == "__main__":
    sys.exit(main())
