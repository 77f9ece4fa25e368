"""``summary.json``: what one run did, written atomically at its start and its end."""

from __future__ import annotations

import json
import math
import os
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SUMMARY = "summary.json"


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
    """Tracks one run; ``status`` is running, completed or failed."""

    def __init__(self, run_dir: str | Path, **fields: Any) -> None:
        self.path = Path(run_dir) / SUMMARY
        self._t0 = time.perf_counter()
        self.data: dict[str, Any] = {"status": "running", "run_dir": str(run_dir), "started_at": _now(), **fields}

    def update(self, **fields: Any) -> None:
        self.data.update(fields)

    def write(self) -> None:
        self.data["wall_time_s"] = round(time.perf_counter() - self._t0, 3)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.data)

    def completed(self, **fields: Any) -> None:
        self.update(status="completed", finished_at=_now(), **fields)
        self.write()

    def refused(self, exc: BaseException) -> None:
        """Failed before it started: the config was refused (the reason names the fix)."""
        self.update(status="failed", finished_at=_now(), error=f"refused: {exc}")
        self.write()

    def failed(self, exc: BaseException) -> None:
        self.update(
            status="failed",
            finished_at=_now(),
            error=f"{type(exc).__name__}: {exc}",
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
