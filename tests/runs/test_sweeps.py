"""Sweeps through the real CLI: parallel launcher, resume after a kill, failures, DDP per job."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import FAST, SMALL_DATA, run_cli

pytestmark = pytest.mark.slow


def job_summaries(sweep_root: Path) -> dict[str, dict]:
    (sweep,) = list(sweep_root.iterdir())
    return {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/summary.json")}


def test_joblib_sweep_then_compare(tmp_path: Path):
    args = [
        "-m",
        "fuselab.cli.train",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "fusion=early,late",
        "rnn=gru,lstm",
        "data.modalities=[signal,tokens],[signal,image]",
        *SMALL_DATA,
        *FAST,
    ]
    result = run_cli(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_summaries(tmp_path / "outputs" / "train" / "multiruns")
    assert len(jobs) == 8 and all(s["status"] == "completed" for s in jobs.values())
    assert len({s["run_dir"] for s in jobs.values()}) == 8  # each job wrote its own directory
    assert len({s["config_hash"] for s in jobs.values()}) == 8  # and trained its own config
    assert "8 completed" in result.stdout  # the sweep's own report

    (sweep,) = list((tmp_path / "outputs" / "train" / "multiruns").iterdir())
    cmp = run_cli(["-m", "fuselab.cli.compare", str(sweep), "--out", str(tmp_path / "cmp")], cwd=tmp_path)
    assert cmp.returncode == 0, cmp.stderr
    md = [" ".join(line.split()) for line in (tmp_path / "cmp" / "compare.md").read_text().splitlines()]
    assert md[4].startswith("| data.modalities | fusion | rnn | n | failed |")
    body = [line for line in md[6:] if line.startswith("|")]
    assert len(body) == 8 and all(line.split("|")[4].strip() == "1" for line in body)


def test_a_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path: Path):
    # gated fusion of a single modality is refused: that job fails, the concat job runs
    args = [
        "-m",
        "fuselab.cli.train",
        "-m",
        "fusion.operator=gated,concat",
        "data.modalities=[signal]",
        *SMALL_DATA,
        *FAST,
    ]
    result = run_cli(args, cwd=tmp_path)
    # the sweep went on past the failed job, and its exit status says one did not complete
    assert result.returncode == 1, result.stderr[-3000:]
    jobs = job_summaries(tmp_path / "outputs" / "train" / "multiruns")
    assert sorted(s["status"] for s in jobs.values()) == ["completed", "failed"]
    assert "1 completed, 1 failed" in result.stdout
    assert "1 of 2 jobs did not complete: exit status 1" in result.stdout


def test_a_job_refused_by_validation_is_a_failed_job_of_the_sweep(tmp_path: Path):
    """A job whose config is refused before it starts still has a summary.json (failed, with the
    reason), is counted and listed, and the same command again re-runs only it."""
    args = ["-m", "fuselab.cli.train", "-m", "rnn.hidden_size=16,-1", *SMALL_DATA, *FAST]
    result = run_cli(args, cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    jobs = job_summaries(tmp_path / "outputs" / "train" / "multiruns")
    assert sorted(s["status"] for s in jobs.values()) == ["completed", "failed"]
    (refused,) = [s for s in jobs.values() if s["status"] == "failed"]
    assert refused["error"].startswith("refused: rnn.hidden_size=-1 is invalid: expected a positive integer")
    assert "1 completed, 1 failed" in result.stdout
    assert re.search(r"failed: .*1-[0-9a-f]+: refused: rnn.hidden_size=-1 is invalid", result.stdout)
    again = run_cli(args, cwd=tmp_path)
    assert again.returncode == 1
    assert again.stdout.count("skipping") + again.stderr.count("skipping") == 1
    assert "1 of 2 jobs did not complete" in again.stdout


def test_killed_sweep_resumes_without_rerunning_finished_jobs(tmp_path: Path):
    args = [sys.executable, "-m", "fuselab.cli.train", "-m", "seed=1,2,3,4", *SMALL_DATA, *FAST]
    env = {**os.environ, "FUSELAB_OUTPUTS": str(tmp_path / "outputs"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    root = tmp_path / "outputs" / "train" / "multiruns"
    deadline = time.time() + 300
    while time.time() < deadline:
        done = [s for s in job_summaries(root).values() if s["status"] == "completed"] if root.exists() else []
        if len(done) >= 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = job_summaries(root)
    finished = {k: s["finished_at"] for k, s in before.items() if s["status"] == "completed"}
    assert 2 <= len(finished) < 4, before

    result = run_cli(args[1:], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    after = job_summaries(root)
    assert len(after) == 4 and all(s["status"] == "completed" for s in after.values())
    for job, stamp in finished.items():
        assert after[job]["finished_at"] == stamp, f"job {job} was run again"
    assert result.stdout.count("skipped: completed earlier") == len(finished)


def test_ddp_inside_a_multirun_runs_each_jobs_overrides_on_every_rank(tmp_path: Path):
    args = [
        "-m",
        "fuselab.cli.train",
        "-m",
        "trainer=ddp_cpu",
        "model.optimizer.lr=0.001,0.002",
        "rnn.hidden_size=16,24",
        *SMALL_DATA,
        *FAST,
    ]
    result = run_cli(args, cwd=tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    (sweep,) = list((tmp_path / "outputs" / "train" / "multiruns").iterdir())
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 4
    pattern = re.compile(r"rank (\d) of 2 trains overrides=(\[.*?\])")
    for job in jobs:
        expected = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        seen = {}
        for logfile in job.glob("*.log"):
            for rank, overrides in pattern.findall(logfile.read_text()):
                seen[int(rank)] = json.loads(overrides)
        assert seen == {0: expected, 1: expected}, (job, seen)
        assert json.loads((job / "summary.json").read_text())["status"] == "completed"


def test_submitit_local_launcher_runs_jobs(tmp_path: Path):
    args = [
        "-m",
        "fuselab.cli.train",
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        "fusion=early,late",
        *SMALL_DATA,
        *FAST,
    ]
    result = run_cli(args, cwd=tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    jobs = job_summaries(tmp_path / "outputs" / "train" / "multiruns")
    assert sorted(s["choices"]["fusion"] for s in jobs.values()) == ["early", "late"]
    assert all(s["status"] == "completed" for s in jobs.values())
    assert not list((tmp_path / "outputs").rglob("%j")), "an empty folder named after submitit's %j pattern is left"


def test_optuna_search_runs_trials_with_sampled_hyperparameters(tmp_path: Path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the [optuna] extra is not installed")
    args = [
        "-m",
        "fuselab.cli.train",
        "hparams_search=synthetic_optuna",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.n_startup_trials=3",
        *SMALL_DATA,
        *FAST,
    ]
    result = run_cli(args, cwd=tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    jobs = job_summaries(tmp_path / "outputs" / "train" / "multiruns")
    assert len(jobs) == 3 and all(s["status"] == "completed" for s in jobs.values())
    assert all(any(o.startswith("model.optimizer.lr=") for o in s["overrides"]) for s in jobs.values())
    assert "Best parameters" in result.stdout + result.stderr
