"""Sweeps that survive interruption: which jobs to skip and what a re-run keeps. (The report a
multirun prints at its end is :mod:`fuselab.reports.sweep_report`.)"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fuselab.locks import RUN_LOCK
from fuselab.training.summary import SUMMARY, read_summary

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


def alive(pid: int | None, host: str | None) -> bool:
    if not pid or host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()


def previous_outcome(out_dir: Path, chash: str) -> dict[str, Any] | None:
    """The summary of a job that must not run again (completed with this config, or still
    running in another live process); None if the job should run."""
    prev = read_summary(out_dir)
    if prev is None:
        return None
    if prev.get("status") == "completed" and prev.get("config_hash") == chash:
        return prev
    if prev.get("status") == "running" and alive(prev.get("pid"), prev.get("host")):
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


# statuses of a sweep's jobs that make the sweep itself fail
FAILED_STATES = ("failed", "interrupted", "unreadable")


def job_outcome(job_dir: Path) -> dict[str, Any]:
    """The summary of one launched job, or what stands for it: a job that ended before writing
    one is failed, an unreadable file is named, a "running" job whose process is gone is interrupted."""
    path = job_dir / SUMMARY
    if not path.exists():
        return {"status": "failed", "run_dir": str(job_dir), "error": f"no {SUMMARY}: the job ended before it started"}
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return {"status": "unreadable", "run_dir": str(job_dir), "error": f"{path} is not readable JSON ({exc})"}
    if not isinstance(summary, dict):
        return {"status": "unreadable", "run_dir": str(job_dir), "error": f"{path} holds no summary object"}
    if summary.get("status") == "running" and summary.get("host") == socket.gethostname():
        if not alive(summary.get("pid"), summary.get("host")):
            summary = {**summary, "status": "interrupted", "error": "its process ended without finishing"}
    return summary


def sweep_summaries(sweep_dir: Path) -> list[dict[str, Any]]:
    """One entry per job the sweep launched (a job directory holds Hydra's ``.hydra`` record or a
    summary), in job order."""
    jobs = {p.parent for p in sweep_dir.glob(f"*/{SUMMARY}")} | {p.parent for p in sweep_dir.glob("*/.hydra")}
    return [job_outcome(d) for d in sorted(jobs)]
