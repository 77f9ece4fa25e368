"""One process per run directory, and one preparation per dataset cache entry.

A lock is an ``fcntl.flock`` on a file holding the owner's pid, host and start time. The kernel
releases it when its process ends, however it ends, so a lock left by a killed process is stale
by construction: the next owner takes it over and says whose it was.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from fuselab.errors import ConfigError

log = logging.getLogger(__name__)

RUN_LOCK = ".fuselab.lock"


class DirectoryInUse(ConfigError):
    """Another live process owns the directory."""


def _describe(holder: dict) -> str:
    if not holder:
        return "another process"
    return f"process {holder.get('pid')} on {holder.get('host')} (since {holder.get('started')})"


class FileLock:
    """An exclusive lock on ``path``. ``wait=False`` refuses at once when it is held (a run
    directory); ``wait=True`` blocks until the holder is done (a dataset being prepared)."""

    def __init__(self, path: Path, what: str, wait: bool = False) -> None:
        self.path, self.what, self.wait = Path(path), what, wait
        self._fd: int | None = None

    def _holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot write to {self.path.parent} ({exc}); choose a writable directory") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            if not self.wait:
                os.close(fd)
                raise DirectoryInUse(
                    f"{self.what} {self.path.parent} is in use by {_describe(holder)}; wait for it to finish, "
                    "or give this run another directory (e.g. drop hydra.run.dir)"
                ) from None
            log.info("waiting for %s, which is preparing %s", _describe(holder), self.path.parent)
            fcntl.flock(fd, fcntl.LOCK_EX)
        previous = self._holder()
        if previous and previous.get("pid") != os.getpid():
            log.warning(
                "took over %s %s from %s, which is no longer running", self.what, self.path.parent, _describe(previous)
            )
        stamp = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(stamp).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # a released lock names no holder
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def run_lock(run_dir: Path) -> FileLock:
    """The lock of a run or sweep-job directory: a second process refuses at once."""
    return FileLock(Path(run_dir) / RUN_LOCK, "the run directory", wait=False)
