"""fuselab-compare on summaries written by hand: grouping, mean ± std over seeds, failures."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest

from fuselab.cli.compare import main
from fuselab.reports.compare import compare_runs, rows


def write(root: Path, name: str, status: str, fusion: str, rnn: str, seed: int, acc: float | None) -> None:
    d = root / name
    d.mkdir(parents=True)
    summary = {
        "status": status,
        "choices": {"data": "synthetic", "fusion": fusion, "rnn": rnn, "model/optimizer": "adamw"},
        "overrides": [f"fusion={fusion}", f"rnn={rnn}", f"seed={seed}", "hydra.launcher.n_jobs=2"],
        "monitor": "val/acc",
        "metrics": {} if acc is None else {"test/acc": acc, "val/acc": acc + 0.01, "test/loss": 1 - acc},
    }
    (d / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    accs = {
        ("early", "gru"): [0.8, 0.9],
        ("early", "lstm"): [0.7, 0.75],
        ("late", "gru"): [0.3, 0.35],
        ("late", "lstm"): [0.25, 0.3],
    }
    i = 0
    for (fusion, rnn), values in accs.items():
        for seed, acc in enumerate(values):
            write(tmp_path, f"{i}", "completed", fusion, rnn, seed, acc)
            i += 1
    write(tmp_path, f"{i}", "failed", "late", "lstm", 2, None)
    (tmp_path / "0" / "attempts" / "1").mkdir(parents=True)  # an earlier attempt is not counted
    write(tmp_path / "0" / "attempts" / "1", "x", "failed", "early", "gru", 0, None)
    return tmp_path


def test_groups_by_varying_axes_with_seed_statistics(sweep: Path):
    c = compare_runs([sweep])
    assert c.axes == ["fusion", "rnn"] and c.primary == "test/acc"
    header, body = rows(c)
    assert header[:4] == ["fusion", "rnn", "n", "failed"]
    table = {tuple(r[:2]): r for r in body}
    early_gru = table[("early", "gru")]
    assert early_gru[2:4] == ["2", "0"]
    assert early_gru[4] == f"{statistics.fmean([0.8, 0.9]):.4f} ± {statistics.stdev([0.8, 0.9]):.4f}"
    assert table[("late", "lstm")][2:4] == ["2", "1"]


def test_cli_writes_markdown_csv_and_plots(sweep: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("report")
    assert main([str(sweep), "--out", str(out)]) == 0
    md = " ".join((out / "compare.md").read_text().split())  # markdown's column padding to one space
    assert "| fusion | rnn | n | failed | test/acc |" in md
    with open(out / "compare.csv") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 4 and {"test/acc mean", "test/acc std"} <= set(lines[0])
    for png in ("bar_fusion.png", "bar_rnn.png", "heatmap.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_errors_name_the_problem(tmp_path: Path, sweep: Path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    blocker = tmp_path / "a-file"
    blocker.write_text("kept")
    assert main([str(sweep), "--out", str(blocker)]) == 2
    assert "--out" in capsys.readouterr().err and blocker.read_text() == "kept"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no summary.json found"):
        compare_runs([tmp_path / "empty"])


def test_a_running_job_is_shown_as_running_and_a_corrupt_summary_is_named(sweep: Path, capsys):
    write(sweep, "running", "running", "late", "gru", 3, None)
    (sweep / "corrupt").mkdir()
    (sweep / "corrupt" / "summary.json").write_text('{"status": "compl')
    c = compare_runs([sweep])
    header, body = rows(c)
    assert header[:5] == ["fusion", "rnn", "n", "running", "failed"]
    table = {tuple(r[:2]): r for r in body}
    assert table[("late", "gru")][2:5] == ["2", "1", "0"]  # running, not failed
    assert table[("late", "lstm")][2:5] == ["2", "0", "1"]
    assert len(body) == 4  # the corrupt file is no group of its own
    (what,) = c.unreadable
    assert str(sweep / "corrupt" / "summary.json") in what and "not readable JSON" in what
    assert main([str(sweep), "--no-plots"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"left out, unreadable: {sweep / 'corrupt' / 'summary.json'} is not readable JSON" in out


def test_only_unreadable_summaries_are_named_in_the_error(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "summary.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"unreadable: .*a/summary.json holds no summary object"):
        compare_runs([tmp_path])


@pytest.mark.parametrize("width", [200, 80, 40])
def test_the_printed_table_fits_the_terminal_without_cutting_a_number(sweep: Path, width: int):
    from rich.console import Console

    from fuselab.reports.compare import print_table

    c = compare_runs([sweep])  # with six more metrics: too wide for 80 columns as a group per row
    for g in c.groups:
        for r in g.runs:
            r.metrics.update({f"test/recall_macro_{k}": 0.123456 for k in range(6)})
    c.metrics += [f"test/recall_macro_{k}" for k in range(6)]
    console = Console(width=width, record=True, color_system=None)
    print_table(c, console)
    out = console.export_text()
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= width
    _, body = rows(c)
    for row in body:
        assert all(cell in out for cell in row)  # every mean ± std, whole
