"""Names that become folders stay inside their output directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import compose_train, run_cli
from omegaconf import OmegaConf

from fuselab.config.names import check_name, check_override_names
from fuselab.errors import ConfigError
from fuselab.reports.studies.spec import load_study

ESCAPES = ["../../x", "..", ".", "a/b", "/abs", "a\\b", "~user", " padded", ""]


@pytest.mark.parametrize("name", ESCAPES)
def test_names_that_leave_their_folder_are_refused(name: str):
    with pytest.raises(ConfigError, match="is not a folder name"):
        check_name(name, "experiment_name")


@pytest.mark.parametrize("name", ["ablation", "fusion=late,rnn=gru", "v1.2", "my-study_3"])
def test_ordinary_names_pass(name: str):
    assert check_name(name, "sweep_name") == name


def test_every_choice_of_a_swept_name_is_checked():
    check_override_names(["experiment_name=a,b", "sweep_name=null", "rnn.hidden_size=1,2"])
    with pytest.raises(ConfigError, match=r"sweep_name='\.\./b'"):
        check_override_names(["+sweep_name=a,../b"])
    check_override_names(["sweep_name="])  # unset: the sweep is named from its command
    with pytest.raises(ConfigError, match=r"experiment_name='' is not a folder name"):
        check_override_names(["experiment_name="])


def test_a_name_from_a_config_file_is_refused_when_the_run_dir_resolves():
    """A preset (a config file of someone else's) that sets experiment_name cannot place the run
    elsewhere either: resolving the run directory refuses it."""
    cfg = compose_train(["experiment_name=../../x"])
    with pytest.raises(Exception, match="is not a folder name"):
        OmegaConf.resolve(OmegaConf.create({"d": "${fuselab_name:${n}}", "n": cfg.experiment_name}))


@pytest.mark.parametrize("name", ["../experiments", "a/b"])
def test_study_names_are_folder_names(name: str, tmp_path: Path):
    with pytest.raises(ConfigError, match="study="):
        load_study(name, tmp_path)
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "study.yaml").write_text(f"name: {name!r}\nmetric: test/acc\nsweep: [seed=1]\n")
    with pytest.raises(ConfigError, match=r"study.yaml: name="):
        load_study("s", tmp_path)


def test_the_command_line_refuses_before_hydra_writes(tmp_path: Path):
    res = run_cli(["-m", "fuselab.cli.train", "experiment_name=../../x", "debug=fast"], cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [
        "fuselab-train: error: experiment_name='../../x' is not a folder name: it must stay inside the output "
        "directory (no '/', '\\', '..', leading '~' or surrounding spaces), e.g. experiment_name=my_ablation"
    ]
    assert sorted(p.name for p in tmp_path.rglob("*")) == []
