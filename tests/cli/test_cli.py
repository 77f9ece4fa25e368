"""The commands as a user runs them, each in a fresh interpreter: sweep, DDP, errors, accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FAST, SMALL_DATA, run_cli

pytestmark = pytest.mark.slow


def summaries(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("summary.json"))]


def test_multirun_gives_one_directory_and_summary_per_job(tmp_path: Path):
    args = ["-m", "fuselab.cli.train", "-m", "fusion=early,late", "rnn=rnn,gru", *SMALL_DATA, *FAST]
    result = run_cli(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = next((tmp_path / "outputs" / "train" / "multiruns").iterdir())
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name.split("-")[0] for p in jobs] == ["0", "1", "2", "3"]  # <job number>-<overrides hash>
    found = summaries(sweep)
    assert len(found) == 4 and all(s["status"] == "completed" for s in found)
    assert {(s["choices"]["fusion"], s["choices"]["rnn"]) for s in found} == {
        ("early", "rnn"),
        ("early", "gru"),
        ("late", "rnn"),
        ("late", "gru"),
    }
    assert len({s["group"] for s in found}) == 1  # one wandb group per sweep


def test_ddp_on_two_cpu_processes_with_bf16(tmp_path: Path):
    args = [
        "-m",
        "fuselab.cli.train",
        "trainer=ddp_cpu",
        "trainer.precision=bf16-mixed",
        "rnn=lstm",
        *SMALL_DATA,
        *FAST,
    ]
    result = run_cli(args, cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "GLOBAL_RANK: 0" in out and "GLOBAL_RANK: 1" in out
    found = summaries(tmp_path / "outputs")
    assert len(found) == 1 and found[0]["status"] == "completed"
    assert 0 <= found[0]["metrics"]["test/acc"] <= 1


@pytest.mark.parametrize(
    "override,needle",
    [
        ("data.modalities=[signal,audio]", "It has: ['signal', 'tokens', 'image']"),
        ("fusion=mid", "fusion=mid: fusion has no option 'mid'; choose one of ['conditioned', 'crossmodal', 'early'"),
        ("rnn.pooling=median", "one of ['last', 'mean', 'max', 'attention']"),
        ("rnn.hiden_size=3", "rnn.hiden_size: rnn has no setting 'hiden_size'; did you mean rnn.hidden_size?"),
    ],
)
def test_user_errors_exit_fast_with_the_fix(tmp_path: Path, override: str, needle: str):
    result = run_cli(["-m", "fuselab.cli.train", override, *FAST], cwd=tmp_path, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 2
    assert needle in out
    assert "Traceback" not in out


def test_default_run_reaches_90_percent_on_synthetic(tmp_path: Path):
    """What `make train` runs: the default config, in full."""
    result = run_cli(["-m", "fuselab.cli.train", "callbacks.progress_bar=null"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (summary,) = summaries(tmp_path / "outputs")
    assert summary["status"] == "completed"
    assert summary["metrics"]["test/acc"] >= 0.9
    assert "outputs:" in result.stdout and "test/acc" in result.stdout


@pytest.mark.slow  # a subprocess run
def test_a_moved_output_dir_says_where_the_log_and_config_went(tmp_path: Path):
    moved = tmp_path / "elsewhere"
    result = run_cli(["-m", "fuselab.cli.train", f"paths.output_dir={moved}", *SMALL_DATA, *FAST], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    outputs = next(line for line in lines if line.startswith("outputs:"))
    logs = next(line for line in lines if line.startswith("log and config:"))
    assert outputs.split()[-1] == str(moved) and (moved / "summary.json").is_file()
    hydra_dir = Path(logs.split()[-1])
    assert (hydra_dir / "train.log").is_file() and (hydra_dir / ".hydra" / "config.yaml").is_file()
