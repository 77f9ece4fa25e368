"""Studies: every one composes, one runs end to end on files in the published layout and its
report puts the reference beside the measured cells; the tolerance logic flags disagreement."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from conftest import REPO, compose_train, run_cli
from fixtures_data import write_affect
from fuselab.study import check_cell, load_study, sweep_command

STUDIES = sorted(p.parent.name for p in (REPO / "experiments").glob("*/study.yaml"))


def first_choice(override: str) -> str:
    if "=" not in override:
        return override  # a deletion (~logger)
    key, _, value = override.partition("=")
    if "," in value and not value.startswith("["):
        value = value.split(",")[0]
    return f"{key}={value}"


@pytest.mark.parametrize("name", STUDIES)
def test_every_study_composes(name: str, tmp_path: Path):
    study = load_study(name, REPO / "experiments")
    assert (study.root / "README.md").exists()
    cfg = compose_train([first_choice(o) for o in study.spec["sweep"]], output_dir=tmp_path)
    assert cfg.data._target_
    for cell in (study.spec.get("reference") or {}).get("cells", []):
        assert "value" in cell or "min" in cell or "max" in cell, cell
        assert set(cell["where"]) <= set(study.spec["axes"]), (cell["where"], study.spec["axes"])


def test_extra_overrides_replace_the_sweeps_own(tmp_path: Path):
    study = load_study("mmsa", REPO / "experiments")
    cmd = sweep_command(study, tmp_path, ["seed=7"])
    assert "seed=7" in cmd and not any(c.startswith("seed=1111") for c in cmd)


def test_tolerance_and_bounds_flag_disagreement():
    runs = [{"status": "completed", "choices": {"fusion": "early"}, "overrides": [], "metrics": {"test/acc2": v}}
            for v in (0.70, 0.72)]  # fmt: skip
    near = check_cell({"where": {"fusion": "early"}, "value": 0.732, "tolerance": 0.03}, runs, "test/acc2")
    far = check_cell({"where": {"fusion": "early"}, "value": 0.80, "tolerance": 0.02}, runs, "test/acc2")
    bound = check_cell({"where": {"fusion": "early"}, "max": 0.5}, runs, "test/acc2")
    missing = check_cell({"where": {"fusion": "late"}, "min": 0.5}, runs, "test/acc2")
    assert near.agrees is True and near.n == 2 and near.mean == pytest.approx(0.71)
    assert far.agrees is False and bound.agrees is False and missing.agrees is None


@pytest.mark.slow
def test_a_paper_study_runs_on_published_layouts_and_reports(tmp_path: Path):
    experiments = tmp_path / "experiments"
    shutil.copytree(REPO / "experiments" / "mult_acl2019", experiments / "mult_acl2019")
    write_affect(tmp_path / "mosi_data.pkl", "multibench")
    write_affect(tmp_path / "mosei_senti_data.pkl", "multibench", seed=1)
    env = {"FUSELAB_MOSI": str(tmp_path / "mosi_data.pkl"), "FUSELAB_MOSEI": str(tmp_path / "mosei_senti_data.pkl")}
    shrink = ["seed=1", "trainer.max_epochs=1", "data.batch_size=8"]
    base = ["-m", "fuselab.study", "--experiments", str(experiments), "--outputs", str(tmp_path / "outputs")]
    result = run_cli([*base, "run", "mult_acl2019", *shrink], cwd=tmp_path, env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    result = run_cli([*base, "report", "mult_acl2019"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    report = (experiments / "mult_acl2019" / "report.md").read_text()
    assert "| data=mosi, fusion=early | test/acc7 |" in report and "0.337 ± 0.03" in report
    assert "(reference unchecked)" in report and "4 runs (0 not completed)" in report
    assert (experiments / "mult_acl2019" / "plots" / "heatmap.png").exists()
    assert yaml.safe_load((experiments / "mult_acl2019" / "study.yaml").read_text())["name"] == "mult_acl2019"
