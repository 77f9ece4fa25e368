"""A user's mistake is one line on stderr with exit code 2; a bug keeps its traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FAST, SMALL_DATA, run_cli
from hydra.errors import InstantiationException

from fuselab.cli.common import report_metrics, run_guarded
from fuselab.errors import ConfigError


def _raise(exc: BaseException):
    def fn(cfg):
        raise exc

    return fn


def test_a_config_error_is_one_line_on_stderr_even_when_wrapped(capsys):
    wrapped = InstantiationException("Error in call to target")
    wrapped.__cause__ = ConfigError("data.modalities=[audio] is not valid; use data.modalities=[signal,image]")
    with pytest.raises(SystemExit) as exit_info:
        run_guarded(_raise(wrapped), None, "fuselab-train")
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == (
        "fuselab-train: error: data.modalities=[audio] is not valid; use data.modalities=[signal,image]"
    )


@pytest.mark.parametrize("bug", [ValueError("a bug"), KeyError("x"), RuntimeError("boom")])
def test_any_other_exception_is_a_bug_and_propagates(bug: BaseException):
    with pytest.raises(type(bug)):
        run_guarded(_raise(bug), None, "fuselab-train")


@pytest.mark.slow
def test_bug_in_a_fusion_module_shows_its_traceback_and_a_bad_override_one_line(tmp_path: Path):
    env = {"PYTHONPATH": str(Path(__file__).parent)}
    bug = run_cli(
        ["-m", "fuselab.cli.train", "fusion._target_=buggy_fusion.BuggyFusion", *SMALL_DATA, *FAST],
        cwd=tmp_path,
        env=env,
    )
    assert bug.returncode == 1
    assert "Traceback" in bug.stderr and "ValueError: injected bug in a fusion module" in bug.stderr
    assert "buggy_fusion.py" in bug.stderr  # the frame where the bug is

    user = run_cli(["-m", "fuselab.cli.train", "fusion.operator=bogus", *SMALL_DATA, *FAST], cwd=tmp_path)
    assert user.returncode == 2
    lines = user.stderr.strip().splitlines()
    assert "Traceback" not in user.stderr and len(lines) == 1, user.stderr
    assert lines[0].startswith("fuselab-train: error: model: fusion.operator='bogus' is not one of")


def test_a_run_that_had_not_converged_says_so_after_its_metrics(capsys):
    summary = {"status": "completed", "wall_time_s": 1.0, "metrics": {"test/acc": 0.5}, "run_dir": "/nowhere"}
    report_metrics({**summary, "converged": True, "best_epoch": 3})
    assert "not converged" not in capsys.readouterr().out
    report_metrics({**summary, "converged": False, "best_epoch": 8, "patience": 3, "monitor": "val/acc"})
    out = " ".join(capsys.readouterr().out.split())
    assert "not converged: val/acc last improved at epoch 8, within the early-stopping patience (3)" in out
    assert "raise trainer.max_epochs" in out and "best checkpoint" not in out  # no file claimed that is not there
    report_metrics({**summary, "converged": False, "best_epoch": 4, "monitor": "val/acc"})
    assert "val/acc last improved at epoch 4, the final epoch;" in " ".join(capsys.readouterr().out.split())


def test_a_group_option_that_does_not_exist_is_one_line_naming_the_options():
    from fuselab.cli.common import check_group_choices

    with pytest.raises(ConfigError, match=r"fusion=mid: fusion has no option 'mid'; choose one of \['conditioned'"):
        check_group_choices(["fusion=mid"])
    with pytest.raises(ConfigError, match=r"model/scheduler=nope: .*\['cosine', 'none', 'plateau'\]"):
        check_group_choices(["-m", "fusion=early,late", "model/scheduler=nope"])
    # sweeps, Hydra's own groups, keys, deletions and another config folder are left alone
    check_group_choices(["fusion=early,late", "hydra/launcher=joblib", "fusion.fused_dim=3", "~logger", "data=hf"])
    check_group_choices(["hydra.searchpath=[file:///elsewhere]", "fusion=max"])
