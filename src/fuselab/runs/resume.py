"""``resume=auto``: continue the latest interrupted run of the same config from its last.ckpt
(model, optimizer, scheduler, loop and RNG state)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig

from fuselab.runs.context import process_rank
from fuselab.runs.sweep import ATTEMPTS
from fuselab.training.summary import Status, mark_resumed, process_alive, read_record

log = logging.getLogger(__name__)


def find_resume_checkpoint(out_dir: Path, chash: str) -> tuple[Path, Path] | None:
    """(last.ckpt, its run directory) of the latest interrupted run with this config: an earlier
    attempt of this job (sweeps), or a sibling run directory (single runs)."""
    attempts = out_dir / ATTEMPTS
    candidates = (
        sorted(attempts.glob("*"), key=lambda p: int(p.name) if p.name.isdigit() else -1, reverse=True)
        if attempts.exists()
        else []
    )
    candidates += sorted((p for p in out_dir.parent.iterdir() if p.is_dir() and p != out_dir), reverse=True)
    for run_dir in candidates:
        ckpt = run_dir / "checkpoints" / "last.ckpt"
        if not ckpt.exists():
            continue
        prev = read_record(run_dir)
        if prev.config_hash != chash:
            continue
        unfinished = prev.status in (Status.RUNNING, Status.INTERRUPTED, Status.FAILED)
        if unfinished and not process_alive(prev.pid, prev.host):
            return ckpt, run_dir
    return None


def requeued() -> bool:
    """This is a SLURM job that was requeued (after its warning signal, a preemption or
    ``scontrol requeue``): it continues as with ``resume=auto``."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0


def resume_checkpoint(cfg: DictConfig, out_dir: Path, chash: str) -> str | None:
    """The checkpoint training starts from: with ``resume=auto`` (or in a requeued SLURM job) the
    last.ckpt of an interrupted run of the same config (which is then marked ``resumed``), else
    ``ckpt_path`` (or None)."""
    if str(cfg.get("resume") or "").lower() != "auto" and not requeued():
        return cfg.get("ckpt_path")
    found = find_resume_checkpoint(out_dir, chash)
    if found is None:
        log.info("resume=auto: no interrupted run of this config to continue; starting afresh")
        return cfg.get("ckpt_path")
    ckpt, run_dir = found
    why = "resume=auto" if str(cfg.get("resume") or "").lower() == "auto" else "a requeued SLURM job"
    log.info("%s: continuing %s from %s", why, run_dir, ckpt)
    if process_rank() == 0 and run_dir.parent == out_dir.parent:
        # the interrupted run points to its continuation (it no longer reads "running")
        mark_resumed(run_dir, out_dir)
    return str(ckpt)
