"""Sweeps on a real SLURM cluster: tests/runs/slurm.sh starts a one-node cluster on this machine
(slurm-wlm and munge from Debian, installed when missing; root needed), once per test session."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from conftest import REPO, run_cli

# one cluster per test session: under pytest-xdist these tests share one worker
pytestmark = pytest.mark.xdist_group("slurm")
SCRIPT = REPO / "tests" / "runs" / "slurm.sh"
SMALL = [
    "data.train_size=128",
    "data.val_size=32",
    "data.test_size=32",
    "trainer.max_epochs=1",
    "~logger",
    "callbacks.progress_bar=null",
    "trainer.enable_model_summary=false",
]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory):
    if os.geteuid() != 0 and not shutil.which("slurmctld"):
        pytest.skip("starting a SLURM cluster needs root (to install slurm-wlm and munge) or an installed SLURM")
    state = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "FUSELAB_SLURM_DIR": str(state)}
    up = subprocess.run(["bash", str(SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr
    yield {"SLURM_CONF": str(state / "slurm.conf")}
    subprocess.run(["bash", str(SCRIPT), "down"], env=env, capture_output=True, text=True, timeout=120)


def _summaries(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("summary.json"))]


def _most_at_once(summaries: list[dict]) -> int:
    spans = [(datetime.fromisoformat(s["started_at"]), datetime.fromisoformat(s["finished_at"])) for s in summaries]
    return max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)


@pytest.mark.slow
def test_a_sweep_on_slurm_completes_skips_what_completed_and_names_a_failed_jobs_log(slurm, tmp_path: Path):
    sweep = ["-m", "fuselab.cli.train", "-m", "hydra/launcher=slurm", "hydra.launcher.array_parallelism=2"]
    args = [*sweep, "fusion=early,late", "seed=1,2", *SMALL]
    first = run_cli(args, cwd=tmp_path, env=slurm)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    runs = _summaries(tmp_path / "outputs")
    assert len(runs) == 4 and {s["status"] for s in runs} == {"completed"}
    assert all(s["slurm_job_id"] for s in runs) and len({s["slurm_job_id"] for s in runs}) == 4
    assert _most_at_once(runs) <= 2  # array_parallelism=2, from the jobs' own start and end times

    again = run_cli(args, cwd=tmp_path, env=slurm)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _summaries(tmp_path / "outputs") == runs  # every job completed earlier: nothing rewritten
    assert "4 completed" in again.stdout

    (tmp_path / "bad").mkdir()
    bad = run_cli([*sweep, "seed=-1,-2", *SMALL], cwd=tmp_path / "bad", env=slurm)  # refused, nothing trains
    assert bad.returncode == 1, bad.stdout[-3000:]
    failed = [s for s in _summaries(tmp_path / "bad" / "outputs") if s["status"] == "failed"]
    assert len(failed) == 2 and all("is invalid" in s["error"] and "SLURM log: " in s["error"] for s in failed)
    assert all(Path(p).is_file() for s in failed for p in s["slurm_logs"])


@pytest.mark.slow
def test_ddp_ranks_started_by_srun_train_one_job_as_ddp_cpu_does(slurm, tmp_path: Path):
    """tasks_per_node=2: srun starts the two ranks, Lightning's SLURM environment takes them (no
    rank is re-launched), both see the same overrides, and the metrics are those of trainer=ddp_cpu
    on this machine, bit for bit."""
    job = ["trainer=ddp_cpu", "seed=3", *SMALL]
    (tmp_path / "slurm").mkdir()
    srun = ["-m", "fuselab.cli.train", "-m", "hydra/launcher=slurm", "hydra.launcher.tasks_per_node=2", *job]
    on_slurm = run_cli(srun, cwd=tmp_path / "slurm", env=slurm)
    assert on_slurm.returncode == 0, on_slurm.stdout[-3000:] + on_slurm.stderr[-3000:]
    (run,) = _summaries(tmp_path / "slurm" / "outputs")
    log = (Path(run["run_dir"]) / "train.log").read_text()
    assert log.count("Initializing distributed") == 2 and "MEMBER: 2/2" in log
    ranks = [line.split("trains overrides=")[1] for line in log.splitlines() if "trains overrides=" in line]
    assert len(ranks) == 2 and ranks[0] == ranks[1]
    (tmp_path / "local").mkdir()
    local = run_cli(["-m", "fuselab.cli.train", "-m", *job], cwd=tmp_path / "local")
    assert local.returncode == 0, local.stderr[-3000:]
    (reference,) = _summaries(tmp_path / "local" / "outputs")
    assert run["status"] == reference["status"] == "completed"
    assert run["metrics"] == reference["metrics"]


def _squeue(env: dict, job: str) -> str:
    done = subprocess.run(
        ["squeue", "-h", "-j", job, "-o", "%T %r"], env={**os.environ, **env}, capture_output=True, text=True
    )
    return done.stdout.strip()


@pytest.mark.slow
def test_the_warning_signal_saves_requeues_and_the_requeued_job_ends_as_an_uninterrupted_run(slurm, tmp_path: Path):
    """SLURM's warning before the time limit (submitit's USR2, sent here with scancel as SLURM
    would at ``signal_delay_s``): the job saves mid-epoch, says interrupted, is requeued by
    submitit, and the requeued job continues from the checkpoint by itself to the metrics of a run
    never stopped."""
    import sys
    import time

    job = ["seed=1", "data.train_size=256", "data.batch_size=8", *SMALL[1:3], "trainer.max_epochs=2", *SMALL[4:]]
    (tmp_path / "slurm").mkdir()
    args = ["-m", "fuselab.cli.train", "-m", "hydra/launcher=slurm", *job]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FUSELAB_OUTPUTS": str(tmp_path / "slurm" / "outputs"), **slurm}
    sweep = subprocess.Popen(
        [sys.executable, *args], cwd=tmp_path / "slurm", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    outputs, deadline, job_id, signalled = tmp_path / "slurm" / "outputs", time.time() + 240, None, False
    while sweep.poll() is None and time.time() < deadline:
        if not signalled and any(outputs.rglob("checkpoints/*.ckpt")):  # epoch 0 done: training goes on
            job_id = _summaries(outputs)[0]["slurm_job_id"]
            subprocess.run(["scancel", "--signal=USR2", job_id], env=env, check=True)
            signalled = True
        elif signalled and _squeue(slurm, job_id) == "PENDING BeginTime":  # SLURM holds a requeued job 2 min
            subprocess.run(["scontrol", "update", f"jobid={job_id}", "StartTime=now"], env=env, check=True)
        time.sleep(0.1)
    out = sweep.communicate(timeout=30)[0].decode()
    assert signalled and sweep.returncode == 0, out[-3000:]
    run_dir = next(p.parent for p in outputs.rglob("summary.json") if p.parent.name != "1")
    final, first = (
        json.loads((run_dir / "summary.json").read_text()),
        json.loads((run_dir / "attempts" / "1" / "summary.json").read_text()),
    )
    assert first["status"] == "interrupted" and first["slurm_job_id"] == final["slurm_job_id"] == job_id
    assert "SLURM's warning signal SIGUSR2" in first["error"] and "the requeued SLURM job continues" in first["error"]
    assert Path(first["checkpoint"]).name == "last.ckpt"
    assert final["status"] == "completed" and final["resumed_from"] == str(run_dir / "attempts/1/checkpoints/last.ckpt")
    assert "a requeued SLURM job: continuing" in (run_dir / "train.log").read_text()
    (tmp_path / "local").mkdir()
    local = run_cli(["-m", "fuselab.cli.train", "-m", *job], cwd=tmp_path / "local")
    assert local.returncode == 0, local.stderr[-3000:]
    (reference,) = _summaries(tmp_path / "local" / "outputs")
    assert final["metrics"] == reference["metrics"] and final["epochs"] == reference["epochs"] == 2
