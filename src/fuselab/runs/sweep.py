"""Sweeps that survive interruption: which jobs to skip and what a re-run keeps. (The report a
multirun prints at its end is :mod:`fuselab.reports.sweep_report`.)"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fuselab.locks import RUN_LOCK
from fuselab.training.summary import SUMMARY, RunRecord, Status, process_alive, read_record

log = logging.getLogger("fuselab.sweep")

ATTEMPTS = "attempts"
# what a re-run leaves in place: Hydra's record of this command, earlier attempts, and the
# directory's lock (held by this very process while it archives)
KEEP = {".hydra", ATTEMPTS, RUN_LOCK}


def config_hash(cfg: DictConfig) -> str:
    """What decides a job's result: the unresolved config without ``paths`` (where it runs)
    and without the bookkeeping keys, so a resumed sweep recognises its finished jobs."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    for key in ("paths", "sweep_name", "skip_completed", "resume", "ckpt_path"):
        plain.pop(key, None)  # type: ignore[union-attr]
    return hashlib.sha1(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:16]


def previous_outcome(out_dir: Path, chash: str) -> RunRecord | None:
    """The record of a job that must not run again (completed with this config, or still
    running in another live process); None if the job should run."""
    prev = read_record(out_dir)
    if prev.status is Status.COMPLETED and prev.config_hash == chash:
        return prev
    if prev.status is Status.RUNNING and process_alive(prev.pid, prev.host):
        return prev
    return None


def archive_previous_attempt(out_dir: Path) -> Path | None:
    """Move what an earlier (failed, killed or differently configured) attempt left in the job
    directory to attempts/<n>/, so a re-run starts clean and nothing is lost."""
    leftovers = [p for p in out_dir.iterdir() if p.name not in KEEP and not p.name.endswith(".log")]
    if not any(p.name == SUMMARY for p in leftovers):
        return None
    root = out_dir / ATTEMPTS
    n = len(list(root.iterdir())) + 1 if root.exists() else 1
    dest = root / str(n)
    dest.mkdir(parents=True)
    for p in leftovers:
        shutil.move(str(p), dest / p.name)
    log.info("kept the previous attempt of this job in %s", dest)
    return dest


def sweep_summaries(sweep_dir: Path) -> list[RunRecord]:
    """One record per job the sweep launched (a job directory holds Hydra's ``.hydra`` record or a
    summary), in job order; a job that wrote none is failed (see :func:`read_record`)."""
    jobs = {p.parent for p in sweep_dir.glob(f"*/{SUMMARY}")} | {p.parent for p in sweep_dir.glob("*/.hydra")}
    return [read_record(d) for d in sorted(jobs)]
