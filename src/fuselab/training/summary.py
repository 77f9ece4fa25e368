"""``summary.json``: what one run did, written atomically at its start and its end
(:class:`RunSummary`), and read back as a typed :class:`RunRecord` (:func:`read_record`) by
sweeps, resumption and every report. Nothing else opens the file.

A run writes ``running`` at its start and ``completed``, ``failed`` or ``interrupted`` (stopped
by SIGTERM, with the checkpoint it saved) at its end; a run that another continued
(``resume=auto``) is rewritten ``resumed``. Reading adds ``interrupted`` for a ``running`` record
whose process on this host is gone (killed), and ``unreadable`` for a file that is not a summary
(the record names what is wrong).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import time
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

SUMMARY = "summary.json"


class Status(str, Enum):
    """How a run stands. A ``str``: it is written to and compared with JSON as its value."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    RESUMED = "resumed"
    INTERRUPTED = "interrupted"
    UNREADABLE = "unreadable"

    def __str__(self) -> str:
        return self.value


# a sweep with a job in one of these did not do what it was asked (its exit status is 1)
DID_NOT_COMPLETE = frozenset({Status.FAILED, Status.INTERRUPTED, Status.UNREADABLE})


def _clean(value: Any) -> Any:
    """JSON-safe: tensors and numpy scalars to floats, NaN/inf to None."""
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(_clean(data), indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def read_summary(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / SUMMARY
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunSummary:
    """Writes one run's summary.json: ``running`` at its start, ``completed`` or ``failed`` at its end."""

    def __init__(self, run_dir: str | Path, **fields: Any) -> None:
        self.stage = "preparation"  # what the run is doing, for the message of an interrupted one
        self.path = Path(run_dir) / SUMMARY
        self._t0 = time.perf_counter()
        self.data: dict[str, Any] = {
            "status": Status.RUNNING.value,
            "run_dir": str(run_dir),
            "started_at": _now(),
            **fields,
        }

    def update(self, **fields: Any) -> None:
        self.data.update(fields)

    def write(self) -> None:
        self.data["wall_time_s"] = round(time.perf_counter() - self._t0, 3)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.data)

    def completed(self, **fields: Any) -> None:
        self.update(status=Status.COMPLETED.value, finished_at=_now(), **fields)
        self.write()

    def refused(self, exc: BaseException) -> None:
        """Failed before it started: the config was refused (the reason names the fix)."""
        self.update(status=Status.FAILED.value, finished_at=_now(), error=f"refused: {exc}{self._logs()}")
        self.write()

    def _logs(self) -> str:
        """Where a SLURM job's output is, for a failed job's error (only the files that exist)."""
        logs = [p for p in self.data.get("slurm_logs") or [] if Path(p).exists()]
        return f" (SLURM log: {', '.join(logs)})" if logs else ""

    def interrupted(self, checkpoint: Path | None, where: str, by: str = "SIGTERM", requeued: bool = False) -> None:
        """Stopped by a signal (SIGTERM, or SLURM's warning before its time limit) ``where`` it
        was; ``checkpoint`` (when one was saved or is there) is what ``resume=auto`` (or the
        requeued job, ``requeued``) continues from."""
        if checkpoint is not None and checkpoint.is_file():
            who = "the requeued SLURM job" if requeued else "the same command with resume=auto"
            if not requeued and self.data.get("slurm_job_id"):
                who += " (or this SLURM job itself, when it is requeued)"
            then = f"saved {checkpoint}; {who} continues from it"
        else:
            then = "no checkpoint was saved: resume=auto starts it afresh"
        self.update(
            status=Status.INTERRUPTED.value,
            finished_at=_now(),
            error=f"interrupted by {by} {where}: {then}",
            checkpoint=str(checkpoint) if checkpoint is not None and checkpoint.is_file() else None,
        )
        self.write()

    def failed(self, exc: BaseException) -> None:
        self.update(
            status=Status.FAILED.value,
            finished_at=_now(),
            error=f"{type(exc).__name__}: {exc}{self._logs()}",
            traceback="".join(traceback.format_exception(exc))[-4000:],
        )
        try:
            self.write()
        except OSError:
            # a full disk: the "running" file is rewritten in place with the few fields that say
            # how the run ended (truncating it frees its blocks first), so it never stays "running"
            keep = ("status", "run_dir", "started_at", "finished_at", "error", "pid", "host", "config_hash")
            short = json.dumps({k: self.data[k] for k in keep if k in self.data})
            with open(self.path, "w") as f:
                f.write(short + "\n")


def has_converged(validations_after_best: int, stopped_early: bool, patience: int | None) -> bool:
    """Whether a run's number is the method's, not its budget's: early stopping ended it, or as many
    validations as the early-stopping patience (1 without early stopping) followed its best value
    without improving it. A run that reached its epoch cap inside that window was still improving."""
    return stopped_early or validations_after_best >= max(1, patience or 1)


def process_alive(pid: int | None, host: str | None) -> bool:
    """Whether the process ``pid`` of ``host`` still runs (False for another host: unknowable)."""
    if not pid or host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()


def _floats(values: Any) -> dict[str, float]:
    """The finite numbers of a metrics mapping (NaN and inf are written as null)."""
    if not isinstance(values, Mapping):
        return {}
    return {
        str(k): float(v)
        for k, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class RunRecord:
    """One run as the reports see it. ``metrics`` holds finite values only; ``part`` is the study
    part a study report found the run in; ``data`` is the file as written, for the fields no
    report reads."""

    status: Status
    run_dir: str
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    overrides: tuple[str, ...] = ()
    choices: dict[str, str] = field(default_factory=dict)
    monitor: str | None = None
    config_hash: str | None = None
    finished_at: str | None = None
    pid: int | None = None
    host: str | None = None
    history: dict[str, list[float]] | None = None
    best_epoch: int | None = None
    patience: int | None = None
    stopped_early: bool = False
    converged: bool | None = None
    part: str | None = None
    data: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, data: Mapping[str, Any], run_dir: str | Path | None = None) -> RunRecord:
        """The record of a summary's JSON object; one without a known status is ``unreadable``."""
        where = str(Path(run_dir).absolute()) if run_dir is not None else str(data.get("run_dir", ""))
        try:
            status = Status(data.get("status"))
            error = _str(data.get("error"))
        except ValueError:
            status, error = Status.UNREADABLE, f"{Path(where) / SUMMARY} has no known status ({data.get('status')!r})"
        history = data.get("history")
        converged = data.get("converged")
        return cls(
            status=status,
            run_dir=where,
            metrics=_floats(data.get("metrics")),
            error=error,
            overrides=tuple(str(o) for o in data.get("overrides") or ()),
            choices={str(k): str(v) for k, v in (data.get("choices") or {}).items()},
            monitor=_str(data.get("monitor")),
            config_hash=_str(data.get("config_hash")),
            finished_at=_str(data.get("finished_at")),
            pid=_int(data.get("pid")),
            host=_str(data.get("host")),
            history=history if isinstance(history, dict) else None,
            best_epoch=_int(data.get("best_epoch")),
            patience=_int(data.get("patience")),
            stopped_early=bool(data.get("stopped_early")),
            converged=converged if isinstance(converged, bool) else None,
            part=_str(data.get("_study_part")),
            data=dict(data),
        )

    @classmethod
    def missing(cls, run_dir: str | Path, error: str, status: Status = Status.FAILED) -> RunRecord:
        return cls(status=status, run_dir=str(run_dir), error=error)

    @property
    def completed(self) -> bool:
        return self.status is Status.COMPLETED

    def replace(self, **changes: Any) -> RunRecord:
        return dataclasses.replace(self, **changes)


def as_records(summaries: Iterable[RunRecord | Mapping[str, Any]]) -> list[RunRecord]:
    """Records as they are, JSON objects (a summary loaded elsewhere) parsed."""
    return [s if isinstance(s, RunRecord) else RunRecord.parse(s) for s in summaries]


def mark_resumed(run_dir: Path, resumed_in: Path) -> None:
    """An interrupted run that ``resume=auto`` continues in ``resumed_in`` points to it."""
    data = read_summary(run_dir) or {}
    write_json(run_dir / SUMMARY, {**data, "status": Status.RESUMED.value, "resumed_in": str(resumed_in)})


def read_record(run_dir: str | Path) -> RunRecord:
    """The record of ``run_dir``: a missing file is a run that ended before it started (failed), a
    file that is not a summary is unreadable (naming it), and a ``running`` record of this host
    whose process is gone is interrupted."""
    path = Path(run_dir) / SUMMARY
    if not path.exists():
        return RunRecord.missing(run_dir, f"no {SUMMARY}: the job ended before it started")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return RunRecord.missing(run_dir, f"{path} is not readable JSON ({exc})", Status.UNREADABLE)
    if not isinstance(data, dict):
        return RunRecord.missing(run_dir, f"{path} holds no summary object", Status.UNREADABLE)
    record = RunRecord.parse(data, run_dir)
    if record.status is Status.RUNNING and record.host == socket.gethostname():
        if not process_alive(record.pid, record.host):
            record = record.replace(status=Status.INTERRUPTED, error="its process ended without finishing")
    return record
