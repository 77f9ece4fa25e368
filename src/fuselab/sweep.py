"""Sweeps that survive interruption: which jobs to skip, what a re-run keeps, and the report a
multirun prints at its end."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from fuselab.resolvers import SWEEP_ENV, sweep_id
from fuselab.summary import SUMMARY, read_summary

log = logging.getLogger("fuselab.sweep")

ATTEMPTS = "attempts"
KEEP = {".hydra", ATTEMPTS}


def config_hash(cfg: DictConfig) -> str:
    """What decides a job's result: the unresolved config without ``paths`` (where it runs)
    and without the bookkeeping keys, so a resumed sweep recognises its finished jobs."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    for key in ("paths", "sweep_name", "skip_completed", "resume", "ckpt_path"):
        plain.pop(key, None)  # type: ignore[union-attr]
    return hashlib.sha1(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _alive(pid: int | None, host: str | None) -> bool:
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
    if prev.get("status") == "running" and _alive(prev.get("pid"), prev.get("host")):
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


def find_resume_checkpoint(out_dir: Path, chash: str) -> tuple[Path, Path] | None:
    """(last.ckpt, its run directory) of the latest interrupted run with this config: an earlier
    attempt of this job (sweeps), or a sibling run directory (single runs)."""
    candidates = sorted((out_dir / ATTEMPTS).glob("*"), key=lambda p: int(p.name) if p.name.isdigit() else -1,
                        reverse=True) if (out_dir / ATTEMPTS).exists() else []  # fmt: skip
    candidates += sorted((p for p in out_dir.parent.iterdir() if p.is_dir() and p != out_dir), reverse=True)
    for run_dir in candidates:
        prev = read_summary(run_dir)
        ckpt = run_dir / "checkpoints" / "last.ckpt"
        if prev is None or not ckpt.exists() or prev.get("config_hash") != chash:
            continue
        if prev.get("status") in ("running", "failed") and not _alive(prev.get("pid"), prev.get("host")):
            return ckpt, run_dir
    return None


def sweep_summaries(sweep_dir: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(sweep_dir.glob(f"*/{SUMMARY}")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            found.append({"status": "unreadable", "run_dir": str(path.parent)})
    return found


class SweepReport(Callback):
    """At the start of a multirun, fixes its directory name for every job (see
    :func:`fuselab.resolvers.sweep_id`); at its end, says how many jobs completed or failed,
    prints the comparison table and the command that uploads offline wandb runs."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ.pop(SWEEP_ENV, None)
        os.environ[SWEEP_ENV] = sweep_id(list(config.hydra.overrides.task), config.get("sweep_name"))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from rich.console import Console

        sweep_dir = Path(str(config.hydra.sweep.dir))
        summaries = sweep_summaries(sweep_dir)
        counts: dict[str, int] = {}
        for s in summaries:
            counts[s.get("status", "?")] = counts.get(s.get("status", "?"), 0) + 1
        console = Console()
        console.print(f"sweep {sweep_dir}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
        if summaries:
            from fuselab.compare import compare_runs, print_table

            try:
                print_table(compare_runs([sweep_dir]), console)
            except ValueError as exc:  # nothing comparable (e.g. every job failed)
                console.print(f"no comparison: {exc}")
        if any(sweep_dir.glob("*/wandb/offline-run-*")):
            console.print(f"upload the wandb runs with:  wandb sync {sweep_dir}/*/wandb/offline-run-*", soft_wrap=True)
        console.print(f"compare again with:  fuselab-compare {sweep_dir}", soft_wrap=True)
