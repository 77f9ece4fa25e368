"""Run-directory and dataset-cache locks: one owner at a time, stale locks taken over."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from fuselab.locks import DirectoryInUse, FileLock, run_lock


def test_a_second_owner_is_refused_with_the_holder_named(tmp_path: Path):
    with run_lock(tmp_path):
        with pytest.raises(DirectoryInUse, match=rf"{tmp_path} is in use by process {os.getpid()} on .*hydra.run.dir"):
            run_lock(tmp_path).acquire()
    with run_lock(tmp_path):  # released: free again
        pass


def test_a_stale_lock_is_taken_over_and_said_so(tmp_path: Path, caplog):
    (tmp_path / ".fuselab.lock").write_text(json.dumps({"pid": 4_000_000, "host": "elsewhere", "started": "then"}))
    with caplog.at_level(logging.WARNING, logger="fuselab.locks"):
        with run_lock(tmp_path):
            held = json.loads((tmp_path / ".fuselab.lock").read_text())
    assert held["pid"] == os.getpid()
    assert "took over the run directory" in caplog.text and "process 4000000 on elsewhere" in caplog.text


def test_a_waiting_lock_takes_its_turn(tmp_path: Path):
    order = []
    first = FileLock(tmp_path / "x.lock", "the dataset cache entry", wait=True)
    first.acquire()

    def second() -> None:
        with FileLock(tmp_path / "x.lock", "the dataset cache entry", wait=True):
            order.append("second")

    t = threading.Thread(target=second)
    t.start()
    time.sleep(0.3)
    order.append("first done")
    first.release()
    t.join(10)
    assert order == ["first done", "second"]
