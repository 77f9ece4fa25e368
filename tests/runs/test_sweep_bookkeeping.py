"""What a re-run of a sweep job keeps and moves."""

from __future__ import annotations

import json
from pathlib import Path

from fuselab.locks import RUN_LOCK, run_lock
from fuselab.runs.sweep import archive_previous_attempt, previous_outcome


def test_a_rerun_moves_the_earlier_attempt_but_keeps_its_own_lock(tmp_path: Path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / "summary.json").write_text(json.dumps({"status": "failed", "config_hash": "abc"}))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "train.log").write_text("log")
    with run_lock(tmp_path):
        moved = archive_previous_attempt(tmp_path)
        assert moved == tmp_path / "attempts" / "1"
        assert (tmp_path / RUN_LOCK).exists() and not (moved / RUN_LOCK).exists()
    assert sorted(p.name for p in moved.iterdir()) == ["checkpoints", "summary.json"]
    assert (tmp_path / ".hydra").is_dir() and (tmp_path / "train.log").exists()
    assert previous_outcome(tmp_path, "abc") is None  # nothing completed: the job runs
