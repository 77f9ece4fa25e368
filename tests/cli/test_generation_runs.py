"""Generation runs end to end, as a user runs them: train, evaluate (predictions and attention
pictures), a sweep over decoder attention and cell that resumes and compares."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FAST, run_cli

pytestmark = pytest.mark.slow

SMALL = ["data.train_size=256", "data.val_size=64", "data.test_size=64", "data.batch_size=32"]


def test_synthetic_generation_learns_then_evaluates(tmp_path: Path):
    # audio alone, no hidden symbols, up to three: a clean transcription task a small model learns
    args = [
        "-m",
        "fuselab.cli.train",
        "experiment=generation_synthetic",
        "data.modalities=[audio]",
        "data.complementary=false",
        "data.max_length=3",
        "data.train_size=3000",
        "data.val_size=300",
        "data.test_size=300",
        "trainer.max_epochs=6",
        "logger=csv",
        "callbacks.progress_bar=null",
    ]
    result = run_cli(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (summary_path,) = (tmp_path / "outputs").glob("generation_synthetic/runs/*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "completed" and summary["monitor"] == "val/wer"
    history = summary["history"]["val/wer"]
    assert history[-1] < history[0] and summary["metrics"]["test/wer"] < 0.2, history

    run_dir = summary_path.parent
    ev = run_cli(
        [
            "-m",
            "fuselab.cli.eval",
            f"ckpt_path={run_dir}/checkpoints/best.ckpt",
            "save_predictions=true",
            "robustness.enabled=true",
            "robustness.levels=2",
        ],
        cwd=tmp_path,
    )
    assert ev.returncode == 0, ev.stderr[-3000:]
    (eval_summary,) = (tmp_path / "outputs").glob("eval/runs/*/summary.json")
    out = json.loads(eval_summary.read_text())
    rows = [json.loads(line) for line in Path(out["predictions"]).read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(300))
    assert all(set(r) == {"id", "references", "hypothesis", "score", "tokens"} for r in rows)
    wrong = sum(r["hypothesis"] != r["references"][0] for r in rows)
    assert wrong / 300 == pytest.approx(1 - out["metrics"]["test/exact_match"], abs=1e-6)
    assert len(out["attention_maps"]) == 4 and all(Path(p).stat().st_size > 1000 for p in out["attention_maps"])
    robustness = json.loads((eval_summary.parent / "robustness.json").read_text())
    assert robustness["metric"] == "test/wer" and robustness["lower_is_better"] is True
    clean, noisy = robustness["curves"]["audio"]
    assert clean == pytest.approx(out["metrics"]["test/wer"]) and noisy > clean  # full noise hurts


def test_generation_sweep_over_attention_and_cell_resumes_and_compares(tmp_path: Path):
    args = [
        "-m",
        "fuselab.cli.train",
        "-m",
        "experiment=generation_synthetic",
        "decoder.attention=none,hierarchical",
        "decoder.cell=gru,lstm",
        *SMALL,
        *FAST,
    ]
    first = run_cli(args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    again = run_cli(args, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.count("skipped: completed earlier") == 4
    (sweep,) = list((tmp_path / "outputs" / "generation_synthetic" / "multiruns").iterdir())
    cmp = run_cli(["-m", "fuselab.cli.compare", str(sweep), "--out", str(tmp_path / "cmp")], cwd=tmp_path)
    assert cmp.returncode == 0, cmp.stderr[-2000:]
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "decoder.attention" in md and "decoder.cell" in md and "wer" in md
