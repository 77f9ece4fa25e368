"""summary.json is written by RunSummary and read back as a typed RunRecord, whatever the file holds."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from fuselab.training.summary import DID_NOT_COMPLETE, RunRecord, RunSummary, Status, read_record


def test_a_written_run_reads_back_typed(tmp_path: Path):
    summary = RunSummary(tmp_path, config_hash="h1", overrides=["seed=2"], choices={"rnn": "gru"}, pid=os.getpid())
    summary.write()
    assert read_record(tmp_path).status is Status.RUNNING  # this very process: still running
    summary.completed(metrics={"test/acc": 0.75, "test/loss": float("nan")}, monitor="val/acc")
    record = read_record(tmp_path)
    assert record.status is Status.COMPLETED and record.completed and record.status == "completed"
    assert record.metrics == {"test/acc": 0.75}  # NaN is written as null and is no number
    assert record.overrides == ("seed=2",) and record.choices == {"rnn": "gru"} and record.config_hash == "h1"
    assert record.monitor == "val/acc" and record.run_dir == str(tmp_path.absolute())
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "completed"


def test_states_no_run_writes(tmp_path: Path):
    missing = read_record(tmp_path / "never")
    assert missing.status is Status.FAILED and "ended before it started" in missing.error
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "summary.json").write_text("{not json")
    bad = read_record(tmp_path / "bad")
    assert bad.status is Status.UNREADABLE and str(tmp_path / "bad" / "summary.json") in bad.error
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "summary.json").write_text(json.dumps({"status": "done"}))
    odd = read_record(tmp_path / "odd")
    assert odd.status is Status.UNREADABLE and "no known status ('done')" in odd.error
    (tmp_path / "dead").mkdir()
    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    (tmp_path / "dead" / "summary.json").write_text(
        json.dumps({"status": "running", "pid": dead_pid, "host": socket.gethostname()})
    )
    dead = read_record(tmp_path / "dead")
    assert dead.status is Status.INTERRUPTED and dead.status in DID_NOT_COMPLETE


@pytest.mark.parametrize("status", [s.value for s in Status])
def test_every_status_parses_to_its_member(status: str):
    assert RunRecord.parse({"status": status, "run_dir": "/r"}).status is Status(status)
