"""One job from a composed config, with its bookkeeping: the training job (``fuselab-train``, one
run or one job of a sweep) and the evaluation job (``fuselab-eval``). Each writes
``summary.json`` at its start and end.

The flow of a training job, in order:

1. check the config (:func:`fuselab.config.validate.validate_train_config`) and that the run
   directory can be written, before torch or Lightning load;
2. in a multirun, skip a job that already completed with the same config, or move an earlier
   attempt's files to ``attempts/<n>/``;
3. find the checkpoint to resume from (``resume=auto``, :mod:`fuselab.runs.resume`);
4. build datamodule, description, :class:`~fuselab.training.module.FusionTask`, loggers,
   callbacks and trainer (:mod:`fuselab.training.build`);
5. fit, then validate and test the best checkpoint; write the metrics to ``summary.json``.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

# Only light modules at import time: a wrong value must fail before torch and Lightning load.
from fuselab import __version__
from fuselab.config.validate import check_precision, to_plain, validate_train_config
from fuselab.errors import ConfigError
from fuselab.locks import DirectoryInUse, FileLock, run_lock
from fuselab.runs.context import hydra_context, process_rank, slurm_job_id
from fuselab.runs.resume import resume_checkpoint
from fuselab.runs.sweep import archive_previous_attempt, config_hash, previous_outcome
from fuselab.training.summary import RunSummary

log = logging.getLogger(__name__)

MIN_FREE_MB = 200


def claim_run_dir(out_dir: Path) -> FileLock | None:
    """Take the run directory for this process before anything is written to it (rank 0 only:
    DDP ranks share their job's directory). Fails if it cannot be written, if another live
    process holds it, or if its disk is (nearly) full."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"the output directory {out_dir} is a file; set paths.log_dir=<dir> (or hydra.run.dir)")
    lock = None
    if process_rank() == 0:
        lock = run_lock(out_dir)
        try:
            lock.acquire()
        except DirectoryInUse:
            raise
        except ConfigError as exc:
            raise ConfigError(
                f"cannot write to the output directory {out_dir}; set paths.log_dir=<dir> ({exc})"
            ) from exc
    free_mb = shutil.disk_usage(out_dir).free / 2**20
    if free_mb < MIN_FREE_MB:
        if lock is not None:
            lock.release()
        raise ConfigError(
            f"only {free_mb:.0f} MB free on the disk of {out_dir} (checkpoints need more than {MIN_FREE_MB} MB); "
            "free some space or set paths.log_dir=<dir on another disk>"
        )
    return lock


def train_job(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job from a composed config; returns its summary (also written to
    summary.json). In a multirun, a job that already completed with the same config is skipped, and
    a job whose config is refused is recorded as failed with the reason (the sweep counts it)."""
    out_dir = Path(cfg.paths.output_dir)
    try:
        validate_train_config(cfg)
    except ConfigError as exc:
        if hydra_context()["multirun"] and process_rank() == 0:
            record_refused_job(cfg, out_dir, exc)
        raise
    lock = claim_run_dir(out_dir)
    try:
        return _train_job(cfg, out_dir)
    finally:
        if lock is not None:
            lock.release()


def record_refused_job(cfg: DictConfig, out_dir: Path, exc: ConfigError) -> None:
    """A sweep job refused before it started: its summary.json says failed, with the reason, so the
    sweep's count and table include it (an earlier attempt in the directory is kept)."""
    try:
        lock = claim_run_dir(out_dir)
    except ConfigError:
        return  # the directory cannot be written (or is in use): nothing to record into
    try:
        archive_previous_attempt(out_dir)
        ctx = hydra_context()
        ctx.pop("parallel_jobs", None)
        summary = RunSummary(out_dir, fuselab_version=__version__, config_hash=config_hash(cfg), **ctx)
        summary.refused(exc)
    finally:
        if lock is not None:
            lock.release()


def _train_job(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    ctx = hydra_context()
    chash = config_hash(cfg)
    is_zero = process_rank() == 0
    if is_zero and ctx["multirun"] and cfg.get("skip_completed", True):
        previous = previous_outcome(out_dir, chash)
        if previous is not None:
            log.info("skipping %s: %s earlier with the same config", out_dir, previous.status)
            return {**previous.data, "skipped": True}
    if is_zero:  # a directory used before (a sweep job re-run, a repeated hydra.run.dir) loses nothing
        archive_previous_attempt(out_dir)
    resume = resume_checkpoint(cfg, out_dir, chash)
    parallel = ctx.pop("parallel_jobs")
    summary = RunSummary(
        out_dir, fuselab_version=__version__, config_hash=chash, pid=os.getpid(), host=socket.gethostname(), **ctx
    )
    if is_zero:
        summary.write()
    stop = Stop()
    try:
        from fuselab.runs.distributed import isolated_job, split_threads

        with isolated_job():
            split_threads(parallel)
            fit_and_test(cfg, ctx, summary, resume, stop)
    except BaseException as exc:
        _finish_wandb_run(failed=True)
        sigterm = _is_sigterm(exc)
        warned = stop.warning is not None and stop.warning.received is not None
        if is_zero and sigterm:
            saved = summary.data.get("checkpoint")
            last = Path(saved) if saved else out_dir / "checkpoints" / "last.ckpt"
            by = f"SLURM's warning signal {stop.warning.name} (the time limit is near)" if warned else "SIGTERM"
            summary.interrupted(last if last.is_file() else None, f"during {summary.stage}", by, requeued=warned)
        elif is_zero:
            summary.failed(exc)
        if sigterm and warned and is_zero:
            stop.warning.requeue(slurm_job_id() or "")  # type: ignore[union-attr]
        if sigterm:  # the exit status of a process ended by SIGTERM, which clusters and containers expect
            raise SystemExit(128 + signal.SIGTERM) from exc
        raise
    _finish_wandb_run(failed=False)
    if is_zero:
        summary.completed()
    return summary.data


def _finish_wandb_run(failed: bool) -> None:
    """Close this job's wandb run (a sweep's next job in this process gets its own)."""
    if "fuselab.training.loggers" in sys.modules:
        sys.modules["fuselab.training.loggers"].finish_wandb_run(failed)


class Stop:
    """What stopped a run early, filled in by :func:`fit_and_test`: the callback that took SLURM's
    warning signal (it requeues the job once the checkpoint and summary are written)."""

    def __init__(self) -> None:
        self.warning: Any = None


def _is_sigterm(exc: BaseException) -> bool:
    return type(exc).__name__ == "SIGTERMException"  # Lightning's; not imported here (light module)


def fit_and_test(
    cfg: DictConfig, ctx: dict[str, Any], summary: RunSummary, resume: str | None, stop: Stop | None = None
) -> None:
    """Steps 4 and 5 of the flow: build the run's objects, fit, validate and test the best checkpoint."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from fuselab.runs.distributed import resolve_strategy
    from fuselab.training.build import (
        build_callbacks,
        build_datamodule,
        build_fusion_task,
        build_trainer,
        checkpoint_callback,
        describe_data,
        resolve_class_weights,
    )
    from fuselab.training.callbacks import RankReport, SaveOnSignal, StepCounter, ValidationHistory, WarningSignal
    from fuselab.training.loggers import (
        build_loggers,
        finish_loggers,
        log_wandb_image,
        log_wandb_predictions,
        run_hparams,
        wandb_predictions,
    )
    from fuselab.training.plan import NO_PLAN, EvaluationPlan

    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    dm = build_datamodule(cfg.data)
    data = describe_data(dm)
    if cfg.get("contributions"):
        from fuselab.training.contributions import check_modalities

        check_modalities(list(data.modalities))
    task = build_fusion_task(cfg, data, config=to_plain(cfg), class_weights=resolve_class_weights(cfg, dm, data))
    transfer = apply_transfer(task.model, cfg.model, data)
    if transfer:
        summary.update(transfer=transfer)
    total = sum(p.numel() for p in task.parameters())
    trainable = sum(p.numel() for p in task.parameters() if p.requires_grad)
    # frozen: pretrained encoders' layers below train_layers, model.freeze, frozen word vectors
    log.info("parameters: %d trainable, %d frozen (%d in all)", trainable, total - trainable, total)
    summary.update(num_parameters=total, trainable_parameters=trainable)
    if cfg.get("fit", True) and trainable == 0:
        frozen_by = f": model.freeze={list(cfg.model.freeze)}" if cfg.model.get("freeze") else ""
        raise ConfigError(
            f"no parameter of the model would train (all {total} are frozen{frozen_by}); "
            "freeze fewer parts, or pass fit=false ckpt_path=<checkpoint> to only evaluate"
        )
    # CPU float sums depend on the thread count: two runs of one config on different counts may
    # part within a few epochs, so the record says what this one used
    summary.update(torch_version=torch.__version__, torch_threads=torch.get_num_threads())
    loggers = build_loggers(cfg, ctx["choices"], list(data.modalities), group=ctx["group"])
    callbacks = build_callbacks(cfg, task.monitor, with_logger=bool(loggers))
    counter = StepCounter()
    history = ValidationHistory(*task.monitor)
    saver = SaveOnSignal(Path(cfg.paths.output_dir) / "checkpoints")
    warning = WarningSignal()
    if stop is not None:
        stop.warning = warning
    callbacks += [RankReport(ctx["overrides"], summary.data["config_hash"]), counter, history, saver, warning]
    trainer = build_trainer(cfg, callbacks, loggers, strategy=resolve_strategy(cfg.trainer.get("strategy", "auto")))
    if cfg.get("contributions") and trainer.world_size > 1:
        raise ConfigError(
            f"contributions=true evaluates on one device, and this trainer has {trainer.world_size}; train here "
            "without it, then run fuselab-eval ckpt_path=<best.ckpt> contributions=true trainer.devices=1"
        )
    if resume:  # a checkpoint of another model or another version fails here, in one line
        from fuselab.training.callbacks import RunCheckpoint
        from fuselab.training.evaluate import check_weights_fit, load_checkpoint

        check_weights_fit(task, load_checkpoint(resume)["state_dict"], resume)
        for cb in trainer.callbacks:
            if isinstance(cb, RunCheckpoint):
                cb.resumed_from = Path(resume).parent

    if cfg.get("fit", True):
        summary.update(resumed_from=resume)
        summary.stage = "training"
        try:
            trainer.fit(task, datamodule=dm, ckpt_path=resume, weights_only=True)
        except SIGTERMException:
            summary.update(checkpoint=str(saver.saved) if saver.saved else None)
            raise
        summary.stage = "the final validation and test"
        if counter.steps == 0:
            where = f" resumed from {resume} at epoch {trainer.current_epoch}," if resume else ""
            raise ConfigError(
                f"fit ran no training step:{where} trainer.max_epochs={trainer.max_epochs}, "
                f"trainer.max_steps={trainer.max_steps}. Raise trainer.max_epochs to train further, or pass "
                "fit=false ckpt_path=<checkpoint> to only evaluate it"
            )
    # Read the checkpoint paths now: validate/test below restore the callback's state
    # from the best checkpoint, which predates the last one.
    stoppers = [cb for cb in trainer.callbacks if isinstance(cb, pl.callbacks.EarlyStopping)]
    stopped = any(cb.stopped_epoch > 0 for cb in stoppers)
    summary.update(
        **history.report(stopped_early=stopped, patience=max((cb.patience for cb in stoppers), default=None))
    )
    ckpt = checkpoint_callback(trainer)
    best = (ckpt.best_model_path or None) if ckpt else None
    last = (ckpt.last_model_path or None) if ckpt else None
    monitor = ckpt.monitor if ckpt else None
    if not cfg.get("fit", True):
        best = cfg.get("ckpt_path")
    metrics: dict[str, float] = {}
    metrics.update(_merge(trainer.validate(task, datamodule=dm, ckpt_path=best, verbose=False, weights_only=True)))
    if cfg.get("test", True):
        # with wandb on one device, the test predictions also become a table of the run
        table = wandb_predictions(loggers, data.target, trainer.world_size)
        with task.evaluating(EvaluationPlan(collected=table) if table is not None else NO_PLAN):
            metrics.update(_merge(trainer.test(task, datamodule=dm, ckpt_path=best, verbose=False, weights_only=True)))
        if table:
            log_wandb_predictions(loggers, table, data.target)
    if cfg.get("contributions"):
        from fuselab.training.build import evaluation_trainer
        from fuselab.training.contributions import run_contributions, summary_metrics

        report = run_contributions(task, dm, evaluation_trainer(cfg), Path(cfg.paths.output_dir), ckpt_path=best)
        metrics.update(summary_metrics(report))
        log_wandb_image(loggers, "test/contributions", Path(cfg.paths.output_dir) / "contributions.png")
        summary.update(contributions=report)
    summary.update(
        metrics=metrics,
        epochs=trainer.current_epoch,
        best_checkpoint=best,
        last_checkpoint=last,
        monitor=monitor,
        modalities=list(data.modalities),
        per_class=task.per_class or None,
    )
    check_finite_metrics(metrics)
    hparams = run_hparams(ctx["choices"], ctx["overrides"], int(cfg.seed))
    finish_loggers(loggers, metrics, monitor, hparams=hparams, record=summary.data)


def check_finite_metrics(metrics: dict[str, float]) -> None:
    """A NaN or infinite final metric fails the run (summary.json keeps the numbers as they came)."""
    bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
    if bad:
        raise ConfigError(
            f"{', '.join(f'{k}={metrics[k]}' for k in bad)}: the model's outputs overflowed or went NaN on those "
            "splits, so the run did not complete. Check the data for extreme values, lower model.optimizer.lr, "
            "or train in a wider precision (trainer.precision=32)"
        )


def apply_transfer(model: Any, model_cfg: DictConfig, data: Any) -> dict[str, Any]:
    """Pretrained word vectors (``model.encoders.modalities.<m>.vectors``), ``model.init_from``
    (weights from another run, by name and shape), then ``model.freeze``; what was done, for
    summary.json (empty when none is set)."""
    from fuselab.training.transfer import freeze, init_from, load_word_vectors

    done: dict[str, Any] = {}
    for name, own in (model_cfg.encoders.get("modalities") or {}).items():
        if own and own.get("vectors"):
            spec = data.modalities[name]
            report = load_word_vectors(model, spec, str(own.vectors), bool(own.get("freeze_vectors", False)))
            done.setdefault("word_vectors", {})[name] = report
    if model_cfg.get("init_from"):
        include = model_cfg.get("init_include")
        done.update(init_from(model, str(model_cfg.init_from), [str(p) for p in include] if include else None))
    if model_cfg.get("freeze"):
        done.update(freeze(model, [str(p) for p in model_cfg.freeze]))
    return done


def _merge(results: list[dict[str, float]]) -> dict[str, float]:
    merged: dict[str, float] = {}
    for r in results:
        merged.update({k: float(v) for k, v in r.items()})
    return merged


def eval_job(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt_path`` (see :mod:`fuselab.training.evaluate`); returns its summary."""
    check_precision(cfg)
    if not cfg.get("ckpt_path"):
        raise ConfigError("fuselab-eval needs the checkpoint to evaluate: ckpt_path=<run>/checkpoints/best.ckpt")
    out_dir = Path(cfg.paths.output_dir)
    lock = claim_run_dir(out_dir)
    try:
        archive_previous_attempt(out_dir)
        summary = RunSummary(out_dir, fuselab_version=__version__, ckpt_path=str(cfg.ckpt_path), **hydra_context())
        from fuselab.training.evaluate import evaluate_checkpoint

        result = evaluate_checkpoint(cfg, out_dir)
        summary.completed(monitor=None, **result)
        return summary.data
    finally:
        if lock is not None:
            lock.release()
