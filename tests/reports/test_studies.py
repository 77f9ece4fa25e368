"""Studies: every one composes, one runs end to end on files in the published layout and its
report puts the reference beside the measured cells; the tolerance logic flags disagreement."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import REPO, compose_train, run_cli
from fixtures_data import write_affect, write_avmnist, write_mmimdb

from fuselab.cli.study import main as study_main
from fuselab.config.nodes import check_node_keys
from fuselab.reports.compare import find_summaries
from fuselab.reports.studies.cells import check_cell, side_by_side
from fuselab.reports.studies.previous import comparison_baseline, reproduction_lines, runs_digest
from fuselab.reports.studies.report import budget_line
from fuselab.reports.studies.run import sweep_command
from fuselab.reports.studies.spec import load_study
from fuselab.training.callbacks import ValidationHistory
from fuselab.training.summary import has_converged

STUDIES = sorted(p.parent.name for p in (REPO / "experiments").glob("*/study.yaml"))


def first_choice(override: str) -> str:
    if "=" not in override:
        return override  # a deletion (~logger)
    key, _, value = override.partition("=")
    if "," in value and not value.startswith("["):
        value = value.split(",")[0]
    return f"{key}={value}"


def every_choice(overrides: list[str]):
    """The first choice of every override, then each other value of a sweep axis in turn."""
    base = [first_choice(o) for o in overrides]
    yield base
    for i, o in enumerate(overrides):
        key, _, value = o.partition("=")
        if "," in value and not value.startswith("["):
            for other in value.split(",")[1:]:
                yield [*base[:i], f"{key}={other}", *base[i + 1 :]]


@pytest.mark.parametrize("name", STUDIES)
def test_every_study_composes(name: str, tmp_path: Path):
    """Every value of every axis composes, and each built node takes every key it is given."""
    study = load_study(name, REPO / "experiments")
    assert (study.root / "README.md").exists()
    for part in study.parts:
        for overrides in every_choice(part.overrides):
            cfg = compose_train(overrides, output_dir=tmp_path)
            assert cfg.data._target_, part.name
            check_node_keys(cfg)
    for cell in (study.spec.get("reference") or {}).get("cells", []):
        assert {"value", "min", "max", "above", "below"} & set(cell), cell
        assert set(cell["where"]) <= {*study.spec["axes"], "part"}, (cell["where"], study.spec["axes"])
        assert cell.get("citation"), cell


DEFAULTS = {"rnn": "gru", "fusion": "feature"}  # what a run reports for a group its sweep does not set


def test_every_reference_cell_can_be_produced_by_a_part():
    """A cell whose where-clause no part's sweep can produce would stay 'not run' forever."""
    for name in STUDIES:
        study = load_study(name, REPO / "experiments")
        produced = []
        for part in study.parts:
            values = {o.split("=", 1)[0]: set(o.split("=", 1)[1].split(",")) for o in part.overrides if "=" in o}
            produced.append((part.name, values))
        for cell in (study.spec.get("reference") or {}).get("cells", []):
            above = cell.get("above") or cell.get("below") or []
            for group in [cell["where"], *(above if isinstance(above, list) else [above])]:
                where = {k: str(v) for k, v in group.items()}
                assert any(
                    where.get("part", pname) == pname
                    and all(k == "part" or v in vals.get(k, {DEFAULTS.get(k)}) for k, v in where.items())
                    for pname, vals in produced
                ), (name, where)


def test_parts_share_the_sweep_and_replace_same_keys(tmp_path: Path):
    study = load_study("mult_acl2019", REPO / "experiments")
    assert [p.name for p in study.parts] == ["aligned", "unaligned_early", "unaligned", "mult"]
    early = next(p for p in study.parts if p.name == "unaligned_early")
    assert "fusion.align=resample" in early.overrides and "rnn=lstm" in early.overrides
    cmd = sweep_command(study, tmp_path, ["seed=7", "unaligned_early:fusion.align=none"], early)
    assert "seed=7" in cmd and "fusion.align=none" in cmd and "fusion.align=resample" not in cmd
    assert "sweep_name=unaligned_early" in cmd
    aligned = sweep_command(study, tmp_path, ["unaligned_early:fusion.align=none"], study.parts[0])
    assert "fusion.align=none" not in aligned
    with pytest.raises(ValueError, match="names part 'unaligned_erly'"):
        sweep_command(study, tmp_path, ["unaligned_erly:fusion.align=none"], early)


def test_a_flow_list_split_at_commas_is_refused(tmp_path: Path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "study.yaml").write_text("name: bad\nmetric: test/acc\nparts:\n  a: [data=mosi,mosei, fusion=early]\n")
    with pytest.raises(ValueError, match="not overrides: \\['mosei'\\]"):
        load_study("bad", tmp_path)
    (folder / "study.yaml").write_text("name: bad\nmetric: test/acc\nparts:\n  ../x: [seed=1]\n")
    with pytest.raises(ValueError, match="names a folder"):
        load_study("bad", tmp_path)


def test_missing_data_stops_a_study_before_any_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    for var in ("FUSELAB_MOSI", "FUSELAB_MOSEI", "FUSELAB_MOSI_UNALIGNED", "FUSELAB_MOSEI_UNALIGNED"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FUSELAB_MOSEI", str(tmp_path / "missing.pkl"))
    argv = ["--experiments", str(REPO / "experiments"), "--outputs", str(tmp_path / "out"), "run", "mmsa"]
    assert study_main(argv) == 2
    err = capsys.readouterr().err
    assert "part 'aligned', data=mosi: data.path is not set (export FUSELAB_MOSI=<file>)" in err
    assert "missing.pkl does not exist" in err and "FUSELAB_MOSEI_UNALIGNED" in err
    assert not (tmp_path / "out").exists()


def test_extra_overrides_replace_the_sweeps_own(tmp_path: Path):
    study = load_study("mmsa", REPO / "experiments")
    cmd = sweep_command(study, tmp_path, ["seed=7"])
    assert "seed=7" in cmd and not any(c.startswith("seed=1111") for c in cmd)


def test_overrides_may_follow_the_parts_on_the_command_line(monkeypatch: pytest.MonkeyPatch, capsys):
    calls = []
    monkeypatch.setattr("fuselab.cli.study.run_study", lambda study, out, extra, only: calls.append((extra, only)) or 0)
    args = ["--experiments", str(REPO / "experiments"), "run", "connected_digits"]
    assert study_main([*args, "--part", "attention", "rnn=gru", "--part", "fused_init", "fused_init:seed=3"]) == 0
    assert study_main([*args, "rnn=gru", "--part", "attention"]) == 0
    assert calls == [(["rnn=gru", "fused_init:seed=3"], ["attention", "fused_init"]), (["rnn=gru"], ["attention"])]
    with pytest.raises(SystemExit):
        study_main([*args, "--part", "attention", "--no-such-flag"])
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


def test_tolerance_and_bounds_flag_disagreement():
    runs = [
        {"status": "completed", "choices": {"fusion": "early"}, "overrides": [], "metrics": {"test/acc2": v}}
        for v in (0.70, 0.72)
    ]
    near = check_cell({"where": {"fusion": "early"}, "value": 0.732, "tolerance": 0.03}, runs, "test/acc2")
    far = check_cell({"where": {"fusion": "early"}, "value": 0.80, "tolerance": 0.02}, runs, "test/acc2")
    bound = check_cell({"where": {"fusion": "early"}, "max": 0.5}, runs, "test/acc2")
    missing = check_cell({"where": {"fusion": "late"}, "min": 0.5}, runs, "test/acc2")
    assert near.agrees is True and near.n == 2 and near.mean == pytest.approx(0.71)
    assert far.agrees is False and bound.agrees is False and missing.agrees is None
    for r in runs:
        r["_study_part"] = "aligned"
    assert check_cell({"where": {"part": "aligned"}, "min": 0.5}, runs, "test/acc2").n == 2
    assert check_cell({"where": {"part": "unaligned"}, "min": 0.5}, runs, "test/acc2").n == 0


def test_a_cell_can_be_held_against_other_groups_of_the_study():
    def run(part, rnn, acc, modalities=None):
        overrides = [f"rnn={rnn}"] + ([f"data.modalities={modalities}"] if modalities else [])
        return {
            "status": "completed",
            "choices": {"fusion": "late"},
            "overrides": overrides,
            "metrics": {"test/acc": acc},
            "_study_part": part,
        }

    runs = [
        run("fusion", "gru", 0.90),
        run("fusion", "gru", 0.86),
        run("fusion", "rnn", 0.60),
        run("audio_only", "gru", 0.82, "[audio]"),
        run("audio_only", "rnn", 0.65, "[audio]"),
        run("image_only", "gru", 0.62, "[image]"),
    ]

    def baselines(rnn):
        return [{"part": "image_only"}, {"part": "audio_only", "rnn": rnn}]

    gru = check_cell({"where": {"part": "fusion", "rnn": "gru"}, "above": baselines("gru")}, runs, "test/acc")
    rnn = check_cell({"where": {"part": "fusion", "rnn": "rnn"}, "above": baselines("rnn")}, runs, "test/acc")
    lstm = check_cell({"where": {"part": "fusion", "rnn": "gru"}, "above": baselines("lstm")}, runs, "test/acc")
    assert gru.agrees is True and gru.reference == "> 0.6200 (part=image_only) and 0.8200 (part=audio_only, rnn=gru)"
    assert rnn.agrees is False  # 0.60 is below the image baseline (0.62) as well as audio's 0.65
    assert lstm.agrees is None and "not run (part=audio_only, rnn=lstm)" in lstm.reference


def _part_run(part: str, metric: str, value: float) -> dict:
    """A completed run's summary as a study part holds it, with one test metric."""
    return {"status": "completed", "choices": {}, "overrides": [], "metrics": {metric: value}, "_study_part": part}


def test_a_verdict_closer_to_its_baseline_than_two_standard_errors_says_so():
    def run(part, acc):
        return _part_run(part, "test/acc", acc)

    runs = [run("base", v) for v in (0.90, 0.92, 0.94)] + [run("near", v) for v in (0.93, 0.95, 0.91)]
    runs += [run("far", v) for v in (0.99, 0.98, 0.99)] + [run("one", 0.99)]
    near = check_cell({"where": {"part": "near"}, "above": [{"part": "base"}]}, runs, "test/acc")
    far = check_cell({"where": {"part": "far"}, "above": [{"part": "base"}]}, runs, "test/acc")
    one = check_cell({"where": {"part": "one"}, "above": [{"part": "base"}]}, runs, "test/acc")
    # by hand: difference 0.93 - 0.92 = 0.01; each side's std 0.02 over 3 runs: se = sqrt(2 * 0.02**2 / 3)
    assert near.agrees is True and near.close and near.separation == pytest.approx(0.01 / math.sqrt(2 * 0.0004 / 3))
    assert far.agrees is True and not far.close and far.separation > 2
    assert one.agrees is True and one.separation is None and not one.close  # a single run: no spread to judge
    # a miss inside the noise is flagged the same way
    below = check_cell({"where": {"part": "base"}, "above": [{"part": "near"}]}, runs, "test/acc")
    assert below.agrees is False and below.close and below.separation < 0


def test_error_rate_cells_must_stay_below_their_baselines_by_the_margin():
    def run(part, wer):
        return _part_run(part, "test/wer", wer)

    runs = [run("fused", 0.10), run("fused", 0.12), run("audio_only", 0.25), run("image_only", 0.18)]
    base = [{"part": "audio_only"}, {"part": "image_only"}]
    ok = check_cell({"where": {"part": "fused"}, "below": base, "margin": 0.05}, runs, "test/wer")
    tight = check_cell({"where": {"part": "fused"}, "below": base, "margin": 0.08}, runs, "test/wer")
    assert ok.agrees is True and ok.reference == "< 0.2500 (part=audio_only) and 0.1800 (part=image_only) by 0.05"
    assert tight.agrees is False  # 0.11 is not 0.08 under the image baseline's 0.18


# one completed early-fusion run with two affect metrics, for the side-by-side tables
EARLY_RUN = {
    "status": "completed",
    "choices": {"fusion": "early"},
    "overrides": [],
    "metrics": {"test/acc2": 0.75, "test/mae": 1.0},
}


def test_side_by_side_lays_cells_out_as_the_paper_does():
    runs = [EARLY_RUN]
    cells = [
        {"where": {"fusion": "early"}, "metric": "test/acc2", "value": 0.753, "tolerance": 0.02},
        {"where": {"fusion": "early"}, "metric": "test/mae", "value": 1.023, "tolerance": 0.01},
        {"where": {"fusion": "early"}, "metric": "test/acc2", "value": 0.9, "tolerance": 0.02},
        {"where": {"fusion": "late"}, "metric": "test/acc2", "value": 0.7, "tolerance": 0.02},
    ]
    lines = "\n".join(side_by_side([check_cell(c, runs, "test/acc2") for c in cells])).splitlines()
    rows = [" ".join(line.split()) for line in lines]
    assert rows[2] == "| setting | acc2 | mae |"
    assert rows[4] == "| fusion=early | 0.750 / 0.753 ✓ | 1.000 / 1.023 ✗ |"
    assert rows[5] == "| fusion=early | 0.750 / 0.9 ✗ | |"  # a second reference for the same cell
    assert rows[6] == "| fusion=late | - / 0.7 · | |"
    assert side_by_side([check_cell(cells[0], runs, "test/acc2")]) == []


def test_reproduction_flags_groups_that_moved():
    previous = {
        "written_at": "t0",
        "groups": {
            "runs": [
                {"key": {"fusion": "early"}, "metric": "test/acc", "mean": 0.80},
                {"key": {"fusion": "late"}, "metric": "test/acc", "mean": 0.50},
            ]
        },
    }
    current = {
        "groups": {
            "runs": [
                {"key": {"fusion": "early"}, "metric": "test/acc", "mean": 0.81},
                {"key": {"fusion": "late"}, "metric": "test/acc", "mean": 0.60},
            ]
        }
    }
    lines = reproduction_lines(previous, current, 0.02)
    assert lines[0].startswith("1 of 2 groups are within ±0.02") and "largest difference is 0.1000" in lines[0]
    assert any("fusion=late" in line and "+0.1000" in line for line in lines)


def test_the_baseline_of_a_regenerated_report_is_the_report_before_those_runs(tmp_path: Path):
    runs = [{"_study_part": "a", "run_dir": "/x/0-ab", "config_hash": "h", "finished_at": "t1"}]
    digest = runs_digest(runs)
    assert digest != runs_digest([{**runs[0], "finished_at": "t2"}])  # a re-run is other runs
    path = tmp_path / "results.json"
    assert comparison_baseline(path, digest) is None  # no earlier report
    path.write_text(json.dumps({"written_at": "t0", "groups": {"a": []}}))  # from before the digest
    assert comparison_baseline(path, digest) == {"written_at": "t0", "groups": {"a": []}}
    earlier = {"written_at": "t0", "groups": {"a": []}}
    path.write_text(json.dumps({"written_at": "t3", "groups": {"a": [1]}, "runs": digest, "compared_with": earlier}))
    assert comparison_baseline(path, digest) == earlier  # regenerated: still against t0
    assert comparison_baseline(path, "other")["written_at"] == "t3"
    path.write_text(json.dumps({"written_at": "t3", "groups": {}, "runs": digest}))
    assert comparison_baseline(path, digest) is None  # the only report is of these very runs


def test_reproduction_matches_groups_whose_budget_column_disappeared_and_names_the_rest():
    # the previous report split GRU runs by a budget column that no longer varies
    previous = {
        "written_at": "t0",
        "groups": {
            "hier": [
                {"key": {"rnn": "gru", "trainer.max_epochs": "25"}, "metric": "test/wer", "mean": 0.138},
                {"key": {"rnn": "lstm", "trainer.max_epochs": "50"}, "metric": "test/wer", "mean": 0.126},
            ],
            "attn": [
                {"key": {"rnn": "gru", "trainer.max_epochs": "25"}, "metric": "test/wer", "mean": 0.17},
                {"key": {"rnn": "gru", "trainer.max_epochs": "50"}, "metric": "test/wer", "mean": 0.16},
            ],
        },
    }
    current = {
        "groups": {
            "hier": [
                {"key": {"rnn": "gru"}, "metric": "test/wer", "mean": 0.158},
                {"key": {"rnn": "lstm"}, "metric": "test/wer", "mean": 0.126},
            ],
            "attn": [{"key": {"rnn": "gru"}, "metric": "test/wer", "mean": 0.165}],
        }
    }
    lines = reproduction_lines(previous, current, 0.01)
    assert lines[0].startswith("1 of 2 groups are within ±0.01") and "largest difference is 0.0200" in lines[0]
    assert any("hier" in line and "rnn=gru" in line and "+0.0200" in line for line in lines)
    # two earlier groups fit the merged one: neither is picked, both are named
    note = next(line for line in lines if line.startswith("Not compared"))
    assert "2 groups" in note and "attn: rnn=gru, trainer.max_epochs=25" in note
    assert "attn: rnn=gru, trainer.max_epochs=50" in note


def _env_mult(tmp: Path) -> tuple[dict, list[str]]:
    files = {
        "FUSELAB_MOSI": ("mosi_data.pkl", True, 0),
        "FUSELAB_MOSEI": ("mosei_senti_data.pkl", True, 1),
        "FUSELAB_MOSI_UNALIGNED": ("mosi_data_noalign.pkl", False, 2),
        "FUSELAB_MOSEI_UNALIGNED": ("mosei_senti_data_noalign.pkl", False, 3),
    }
    for name, aligned, seed in files.values():
        write_affect(tmp / name, "multibench", aligned=aligned, seed=seed)
    # late has no reference cell; the crossmodal part has none either: one data set of it runs
    shrink = ["aligned:fusion=early,feature", "unaligned:fusion=feature", "mult:data=mosi_unaligned"]
    return {k: str(tmp / v[0]) for k, v in files.items()}, ["seed=1", "data.batch_size=8", *shrink]


def _env_mmsa(tmp: Path) -> tuple[dict, list[str]]:
    env = {}
    for i, (var, aligned) in enumerate(
        [
            ("FUSELAB_MOSI", True),
            ("FUSELAB_MOSEI", True),
            ("FUSELAB_MOSI_UNALIGNED", False),
            ("FUSELAB_MOSEI_UNALIGNED", False),
        ]
    ):
        folder = tmp / var.lower()
        folder.mkdir()
        path = folder / ("aligned_50.pkl" if aligned else "unaligned_50.pkl")
        write_affect(path, "mmsa", aligned=aligned, seed=i)
        env[var] = str(path)
    return env, ["seed=1111", "data.batch_size=8", "callbacks=default"]


def _env_multibench(tmp: Path) -> tuple[dict, list[str]]:
    write_affect(tmp / "mosi_raw.pkl", "multibench", seed=0)
    write_affect(tmp / "mosei_raw.pkl", "multibench", seed=1)
    write_mmimdb(tmp / "multimodal_imdb.hdf5")
    write_avmnist(tmp / "avmnist")
    env = {
        "FUSELAB_MOSI": str(tmp / "mosi_raw.pkl"),
        "FUSELAB_MOSEI": str(tmp / "mosei_raw.pkl"),
        "FUSELAB_MMIMDB": str(tmp / "multimodal_imdb.hdf5"),
        "FUSELAB_AVMNIST": str(tmp / "avmnist"),
    }
    scoped = [
        "seed=1",
        "callbacks=default",
        "mmimdb:data.split_ends=[40,50,60]",
        "avmnist:data.val_size=8",
        "affect:data.batch_size=8",
        "mmimdb:data.batch_size=8",
        "avmnist:data.batch_size=8",
        "affect:fusion=early,feature",
        "avmnist:fusion=early,lowrank",
    ]  # the cells with a reference, and AV-MNIST
    return env, scoped


PAPER_STUDIES = {
    "mult_acl2019": (_env_mult, "| data=mosi, fusion=early | test/acc7 |", "0.337 ± 0.03", 9),
    "mmsa": (_env_mmsa, "| data=mosi_unaligned, fusion=tensor | test/mae |", "0.9473 ± 0.04", 8),
    "multibench": (_env_multibench, "| data=mmimdb, fusion=lowrank | test/f1_micro |", "0.592 ± 0.02", 9),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PAPER_STUDIES))
def test_paper_studies_run_on_published_layouts_and_report(name: str, tmp_path: Path):
    """Every part of each study that needs outside data runs end to end on small files in the
    published layouts, and the report puts the reference beside the measured cells."""
    setup, row, reference, runs = PAPER_STUDIES[name]
    experiments = tmp_path / "experiments"
    shutil.copytree(REPO / "experiments" / name, experiments / name)
    env, extra = setup(tmp_path)
    base = ["-m", "fuselab.cli.study", "--experiments", str(experiments), "--outputs", str(tmp_path / "outputs")]
    result = run_cli([*base, "run", name, "trainer.max_epochs=1", *extra], cwd=tmp_path, env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    result = run_cli([*base, "report", name], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    report = re.sub(" +", " ", (experiments / name / "report.md").read_text())  # cells are padded
    assert row in report and reference in report, report[:3000]
    assert f"{runs} runs ({runs} completed)" in report, report[:600]
    assert "not run |" not in report.split("## All groups")[0], report[:4000]
    assert (experiments / name / "results.json").exists()
    assert yaml.safe_load((experiments / name / "study.yaml").read_text())["name"] == name
    # a second report from the same runs does not take the first for an earlier measurement
    # (in this process: the command itself ran above)
    results = experiments / name / "results.json"
    in_process = [*base[2:], "report", name]
    assert study_main(in_process) == 0
    assert "## Against the previous report" not in (experiments / name / "report.md").read_text()
    # made from other runs, the previous results.json is the baseline, and stays it when regenerated
    saved = json.loads(results.read_text())
    results.write_text(json.dumps({**saved, "runs": "other runs", "written_at": "t0"}))
    for _ in range(2):
        assert study_main(in_process) == 0
        again = (experiments / name / "report.md").read_text()
        assert "(written t0); the largest difference is 0.0000" in again, again[-3000:]


def test_list_outside_a_checkout_says_where_it_looked(tmp_path: Path, capsys):
    assert study_main(["--experiments", str(tmp_path / "nowhere"), "list"]) == 2
    err = capsys.readouterr().err
    assert f"no studies in {tmp_path / 'nowhere'}" in err and "--experiments <folder>" in err


def test_unchecked_references_are_marked_wherever_they_are_shown():
    runs = [EARLY_RUN]
    cells = [
        {"where": {"fusion": "early"}, "metric": "test/acc2", "value": 0.753, "tolerance": 0.02, "checked": False},
        {"where": {"fusion": "early"}, "metric": "test/mae", "value": 1.023, "tolerance": 0.01},
    ]
    lines = side_by_side([check_cell(c, runs, "test/acc2") for c in cells])
    assert lines[0].endswith("; † reference unchecked):")
    row = " ".join("\n".join(lines).splitlines()[-1].split())
    assert row == "| fusion=early | 0.750 / 0.753 † ✓ | 1.000 / 1.023 ✗ |"
    for name in ("multibench", "mult_acl2019"):
        spec = yaml.safe_load((REPO / "experiments" / name / "study.yaml").read_text())
        unchecked = [c for c in spec["reference"]["cells"] if c.get("checked", True) is False]
        assert unchecked, name
    # mmsa's cells were all entered from and compared with MMSA's newest table (test_mmsa_reference)
    mmsa = yaml.safe_load((REPO / "experiments" / "mmsa" / "study.yaml").read_text())["reference"]["cells"]
    assert all(c.get("checked", True) for c in mmsa)


def test_a_cell_whose_runs_were_still_improving_gets_no_verdict():
    def run(fusion: str, acc: float, converged: bool) -> dict:
        return {
            "status": "completed",
            "choices": {"fusion": fusion},
            "overrides": [],
            "metrics": {"test/acc": acc},
            "converged": converged,
            "history": {"epoch": [0, 1], "val/acc": [acc - 0.1, acc]},
        }

    runs = [run("early", 0.5, False), run("early", 0.6, True), run("late", 0.9, True)]
    limited = check_cell({"where": {"fusion": "early"}, "min": 0.9}, runs, "test/acc")
    assert limited.agrees is None and limited.budget_limited == 1 and limited.n == 2
    beaten = check_cell({"where": {"fusion": "late"}, "above": [{"fusion": "early"}]}, runs, "test/acc")
    assert beaten.agrees is None and beaten.budget_limited == 1  # its baseline had not converged
    done = check_cell({"where": {"fusion": "late"}, "min": 0.8}, runs, "test/acc")
    assert done.agrees is True and done.budget_limited == 0


def test_a_run_that_reached_its_cap_inside_the_patience_window_had_not_converged(tmp_path: Path):
    assert has_converged(0, stopped_early=False, patience=None) is False  # best in the last epoch
    assert has_converged(1, stopped_early=False, patience=None) is True
    assert has_converged(2, stopped_early=False, patience=3) is False  # early stopping would go on
    assert has_converged(3, stopped_early=False, patience=3) is True
    assert has_converged(0, stopped_early=True, patience=3) is True

    history = ValidationHistory("val/acc", "max")
    history.values, history.epochs = [0.5, 0.7, 0.69, 0.68], [0, 1, 2, 3]
    assert history.report(stopped_early=False, patience=3) | {"history": None} == {
        "history": None,
        "best_epoch": 1,
        "stopped_early": False,
        "patience": 3,
        "converged": False,
    }

    # summaries written before the patience was recorded: read back from the run's Hydra config
    def old_run(name: str, config: dict | None) -> None:
        run = tmp_path / name
        (run / ".hydra").mkdir(parents=True)
        epochs = list(range(20))
        summary = {"status": "completed", "history": {"epoch": epochs, "val/acc": [e / 20 for e in epochs]}}
        (run / "summary.json").write_text(json.dumps(summary | {"best_epoch": 18, "converged": True}))
        if config is not None:
            (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))

    old_run("capped", {"callbacks": {"early_stopping": {"patience": 3}}})
    old_run("no_stopper", {"callbacks": {"checkpoint": {}}})
    old_run("no_config", None)
    assert [s.converged for s in find_summaries([tmp_path / "capped"])] == [False]
    assert [s.converged for s in find_summaries([tmp_path / "no_stopper"])] == [True]
    assert [s.converged for s in find_summaries([tmp_path / "no_config"])] == [True]
    assert len(find_summaries([tmp_path])) == 3


def test_the_budget_line_names_parts_whose_budget_differs():
    line = budget_line(load_study("avmnist_encoders", REPO / "experiments"), [])
    assert "trainer.max_epochs: 15 (lenet), 30 (default)" in line
    assert "trainer.min_epochs=5" in line and "trainer.limit_train_batches=100" in line
    assert "callbacks.early_stopping.patience=3" in line and "another budget" not in line
    runs = [
        {"_study_part": "lenet", "overrides": ["trainer.max_epochs=15", "seed=1"]},
        {"_study_part": "default", "overrides": ["trainer.max_epochs=25", "seed=1"]},
    ]
    line = budget_line(load_study("avmnist_encoders", REPO / "experiments"), runs)
    assert "(1 runs were trained with another budget" in line


def test_a_report_from_fewer_runs_never_replaces_a_fuller_one(tmp_path: Path, capsys):
    """Regenerating with part of the runs gone writes report.partial.md beside the committed report,
    names what is missing, and leaves report.md, results.json and plots/ byte for byte."""
    experiments, outputs = tmp_path / "experiments", tmp_path / "outputs"
    (experiments / "tiny").mkdir(parents=True)
    (experiments / "tiny" / "study.yaml").write_text(
        "name: tiny\nmetric: test/acc\nquestion: which fusion?\nsweep:\n  - fusion=early,late\n  - seed=1,2\n"
    )
    runs = outputs / "studies" / "tiny" / "multiruns" / "runs"
    for i, (fusion, seed, acc) in enumerate([("early", 1, 0.8), ("early", 2, 0.9), ("late", 1, 0.5), ("late", 2, 0.6)]):
        (runs / f"{i}-x").mkdir(parents=True)
        summary = {**_part_run("runs", "test/acc", acc), "overrides": [f"fusion={fusion}", f"seed={seed}"]}
        summary.update(run_dir=str(runs / f"{i}-x"), monitor="val/acc")
        (runs / f"{i}-x" / "summary.json").write_text(json.dumps(summary))
    base = ["--experiments", str(experiments), "--outputs", str(outputs)]
    assert study_main([*base, "report", "tiny"]) == 0
    root = experiments / "tiny"
    assert "4 runs (4 completed)" in (root / "report.md").read_text()
    kept = {p.name: p.read_bytes() for p in [root / "report.md", root / "results.json", *(root / "plots").iterdir()]}
    shutil.rmtree(runs / "3-x")
    (runs / "2-x" / "summary.json").write_text("{not json")
    capsys.readouterr()
    assert study_main([*base, "report", "tiny"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "report.partial.md: these runs lack numbers the previous report has" in out
    after = {p.name: p.read_bytes() for p in [root / "report.md", root / "results.json", *(root / "plots").iterdir()]}
    assert after == kept
    partial = (root / "report.partial.md").read_text()
    assert "2 runs (2 completed)" in partial
    assert "runs: fusion=late had 2 runs, now 0" in partial
    assert "Parts with fewer runs than their sweep launches: runs (2 of 4)" in partial
    assert f"Left out, unreadable: {runs / '2-x' / 'summary.json'} is not readable JSON" in partial
    assert (root / "plots.partial").is_dir()  # this report's plots, beside the kept ones


def test_side_by_side_headers_keep_nested_metric_names_apart():
    from fuselab.reports.studies.cells import short_names

    names = ["test/acc", "test/shapley/acc/signal", "test/alone/acc/signal", "val/acc"]
    assert short_names(names) == ["test/acc", "shapley/acc/signal", "alone/acc/signal", "val/acc"]
    assert short_names(["test/acc", "test/interaction/acc/a+b"]) == ["acc", "interaction/acc/a+b"]
