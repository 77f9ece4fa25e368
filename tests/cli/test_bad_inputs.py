"""Every bad input of the README's table: exit code 2, one line on stderr that names the fix,
no traceback, and nothing that existed on disk changed (an earlier completed run, the cache)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from conftest import FAST, SMALL_DATA, compose_train

from fuselab.cli.common import run_guarded
from fuselab.runs.job import eval_job, train_job

# the cache's own bookkeeping, which any preparation may update: the memo of source-file hashes
# and the lock files of preparations
BOOKKEEPING = ("file-hashes.json", ".lock")


def snapshot(*roots: Path) -> dict[str, str]:
    """Path -> content hash of every file under ``roots`` (but the cache's bookkeeping)."""
    found = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_file() and not p.name.endswith(BOOKKEEPING):
                found[str(p)] = hashlib.sha1(p.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A completed run (the thing a bad input must never touch) and its checkpoint."""
    run_dir = tmp_path_factory.mktemp("earlier") / "run"
    summary = train_job(compose_train([*SMALL_DATA, *FAST, "rnn.hidden_size=16"], output_dir=run_dir))
    assert summary["status"] == "completed"
    return run_dir


def refused(tmp_path: Path, earlier: Path, capsys, overrides: list[str], config: str = "train") -> str:
    cache = Path(compose_train([]).paths.cache_dir).expanduser()
    before = snapshot(earlier, cache)
    cfg = compose_train(overrides, output_dir=tmp_path / "new", config_name=config)
    job, prog = (train_job, "fuselab-train") if config == "train" else (eval_job, "fuselab-eval")
    with pytest.raises(SystemExit) as exit_info:
        run_guarded(job, cfg, prog)
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"{prog}: error: ")
    assert snapshot(earlier, cache) == before, "a refused input changed files that existed before it"
    return lines[0]


TRAIN_CASES = {
    "empty modalities": (["data.modalities=[]"], r"data.modalities=\[\] is invalid.*data.modalities=\[signal,image\]"),
    "one name for a list": (["data.modalities=signal"], r"it takes a list: data.modalities=\[signal\]"),
    "unknown modality": (["data.modalities=[signal,audio]"], r"It has: \['signal', 'tokens', 'image'\]"),
    "eval batch of 0": (["data.eval_batch_size=0"], r"data.eval_batch_size=0 is invalid.*e.g. data.eval_batch_size="),
    "misspelled resume": (["resume=autp"], r"resume='autp' is invalid: expected null or auto"),
    "fit=false without a checkpoint": (["fit=false"], r"no ckpt_path is given; pass ckpt_path="),
    "no training batches": (["trainer.limit_train_batches=0"], r"limit_train_batches=0 is invalid.*=0.5"),
    "no test batches": (["trainer.limit_test_batches=0"], r"set test=false to skip testing"),
    "endless run": (["trainer.max_epochs=-1"], r"trains without end.*trainer.max_epochs=20"),
    "fusion of width 0": (["fusion.operator=sum", "fusion.fused_dim=0"], r"fusion.fused_dim=0 is invalid.*=64"),
    "negative seed": (["seed=-1"], r"seed=-1 is invalid.*seed=1"),
    "infinite learning rate": (["model.optimizer.lr=inf"], r"expected a finite positive number"),
    "empty split": (["data.train_size=0"], r"data.train_size=0 must be >= 1, e.g. data.train_size=4000"),
    "negative split": (["data.test_size=-5"], r"data.test_size=-5 must be >= 1"),
    "late fusion on one modality": (["fusion=late", "data.modalities=[signal]"], r"use fusion=feature"),
    "absurd size": (["rnn.hidden_size=200000"], r"parameters need about [\d.]+ GiB.*Lower rnn.hidden_size"),
    "fp16 on CPU": (["trainer.accelerator=cpu", "trainer.precision=16-mixed"], r"trainer.precision=bf16-mixed"),
    "missing checkpoint": (["ckpt_path=/nonexistent/best.ckpt"], r"does not exist; pass the best.ckpt of a run"),
    "optimizer setting torch refuses": (["model.optimizer.weight_decay=-1"], r"model.optimizer: Invalid weight_decay"),
    "no gradient accumulation step": (["+trainer.accumulate_grad_batches=0"], r"accumulate_grad_batches=0 is invalid"),
    "trainer setting Lightning refuses": (["trainer.devices=0"], r"trainer: .*devices=0"),
    "checkpoint monitor never logged": (["callbacks.model_checkpoint.monitor=val/bogus"], r"\(Lightning\) .*val/bogus"),
    "setting the fusion does not take": (["+fusion.bogus=1"], r"fusion.bogus: FeatureFusion \(fusion\) takes no"),
    "misspelt rnn setting": (["+rnn.hiden_size=3"], r"rnn.hiden_size: .*did you mean rnn.hidden_size\?"),
    "misspelt trainer setting": (["+trainer.max_epoch=3"], r"did you mean trainer.max_epochs\?"),
    "negative patience": (
        ["callbacks=early_stopping", "callbacks.early_stopping.patience=-1"],
        r"callbacks.early_stopping.patience=-1 is invalid: expected an integer >= 0",
    ),
    "everything frozen": (["model.freeze=[body,head]"], r"no parameter of the model would train .*freeze fewer"),
}


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_refused_training_inputs(case: str, tmp_path: Path, earlier_run: Path, capsys):
    overrides, expect = TRAIN_CASES[case]
    line = refused(tmp_path, earlier_run, capsys, [*SMALL_DATA, *FAST, *overrides])
    assert re.search(expect, line), line


def test_checkpoints_that_do_not_fit(tmp_path: Path, earlier_run: Path, capsys):
    ckpt = earlier_run / "checkpoints" / "best.ckpt"
    other_model = refused(tmp_path, earlier_run, capsys, [*SMALL_DATA, *FAST, f"ckpt_path={ckpt}"])
    assert re.search(r"does not fit the model this config builds.*other shapes", other_model)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(ckpt.read_bytes()[:1000])
    line = refused(tmp_path, earlier_run, capsys, [*SMALL_DATA, *FAST, f"ckpt_path={truncated}"])
    assert "not a readable checkpoint (truncated or corrupt?)" in line
    line = refused(tmp_path, earlier_run, capsys, [*SMALL_DATA, *FAST, f"ckpt_path={earlier_run}"])
    assert "is a directory; pass a file such as" in line


def test_output_or_cache_that_is_a_file(tmp_path: Path, earlier_run: Path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cfg = compose_train([*SMALL_DATA, *FAST], output_dir=blocker)
    with pytest.raises(SystemExit):
        run_guarded(train_job, cfg, "fuselab-train")
    assert "the output directory" in capsys.readouterr().err and blocker.read_text() == "x"
    line = refused(tmp_path, earlier_run, capsys, [*SMALL_DATA, *FAST, "data.seed=7", f"paths.cache_dir={blocker}"])
    assert re.search(r"the dataset cache .*a-file is a file; set paths.cache_dir=<dir>", line)


EVAL_CASES = {
    "no checkpoint": ([], r"needs the checkpoint to evaluate: ckpt_path="),
    "unknown split": (["split=train", "ckpt_path=CKPT"], r"split=train is not one of \['test', 'val'\]"),
    "unknown modality dropped": (["drop=[audio]", "ckpt_path=CKPT"], r"drop=\['audio'\]: not modalities of this run"),
    "every modality dropped": (
        ["drop=[signal,tokens,image]", "ckpt_path=CKPT"],
        r"drops every modality .*at least one",
    ),
    "a curve of one level": (
        ["robustness.enabled=true", "robustness.levels=1", "ckpt_path=CKPT"],
        r"robustness.levels=1: a curve needs 2 levels or more",
    ),
    "a missing baseline": (
        ["robustness.enabled=true", "robustness.baseline=/nonexistent/robustness.json", "ckpt_path=CKPT"],
        r"robustness.baseline=/nonexistent/robustness.json: cannot read it",
    ),
}


@pytest.mark.parametrize("case", sorted(EVAL_CASES))
def test_refused_evaluation_inputs(case: str, tmp_path: Path, earlier_run: Path, capsys):
    overrides, expect = EVAL_CASES[case]
    ckpt = str(earlier_run / "checkpoints" / "best.ckpt")
    line = refused(tmp_path, earlier_run, capsys, [o.replace("CKPT", ckpt) for o in overrides], config="eval")
    assert re.search(expect, line), line


def test_a_run_that_trains_nothing_is_not_completed(tmp_path: Path, earlier_run: Path, capsys):
    """Resuming a checkpoint that already reached trainer.max_epochs runs no step: refused, and
    the new run's summary says failed, not completed."""
    last = earlier_run / "checkpoints" / "last.ckpt"
    line = refused(tmp_path, earlier_run, capsys, [*SMALL_DATA, *FAST, "rnn.hidden_size=16", f"ckpt_path={last}"])
    assert re.search(r"fit ran no training step: resumed from .*last.ckpt at epoch 1.*Raise trainer.max_epochs", line)
    summary = json.loads((tmp_path / "new" / "summary.json").read_text())
    assert summary["status"] == "failed" and "fit ran no training step" in summary["error"]


def test_a_reused_run_directory_keeps_the_earlier_run(tmp_path: Path):
    run_dir = tmp_path / "run"
    first = train_job(compose_train([*SMALL_DATA, *FAST], output_dir=run_dir))
    second = train_job(compose_train([*SMALL_DATA, *FAST, "seed=2"], output_dir=run_dir))
    kept = json.loads((run_dir / "attempts" / "1" / "summary.json").read_text())
    assert kept["status"] == "completed" and kept["metrics"] == first["metrics"]
    assert (run_dir / "attempts" / "1" / "checkpoints" / "best.ckpt").exists()
    assert json.loads((run_dir / "summary.json").read_text())["config_hash"] == second["config_hash"]


def edited_checkpoint(earlier: Path, out: Path, edit) -> Path:
    """A copy of the earlier run's best.ckpt whose stored config ``edit`` changed (as someone who
    shares a checkpoint could)."""
    import torch

    ckpt = torch.load(earlier / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    edit(ckpt["hyper_parameters"]["config"])
    torch.save(ckpt, out)
    return out


def _set(path: str, value):
    def edit(config: dict) -> None:
        *parents, last = path.split(".")
        node = config
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value

    return edit


@pytest.mark.parametrize(
    ("key", "target"),
    [
        ("rnn", "os.system"),
        ("data", "subprocess.run"),
        ("model.head", "fuselab.data.datasets.hf.np.save"),
        ("model.encoders", "pathlib.Path.write_text"),
        ("fusion", "builtins.exec"),
        ("model.optimizer", "torch.save"),
        ("decoder", "shutil.rmtree"),
    ],
)
def test_an_edited_checkpoint_runs_no_code(key: str, target: str, tmp_path: Path, earlier_run: Path, capsys):
    """A stored config naming any callable but fuselab's classes and torch's optimizers is refused
    before anything is called: the command it carries never runs."""
    marker = tmp_path / "MARKER"
    node = {"_target_": target, "_args_": [f"touch {marker}"], "command": f"touch {marker}"}
    ckpt = edited_checkpoint(earlier_run, tmp_path / "edited.ckpt", _set(key, node))
    line = refused(tmp_path, earlier_run, capsys, [f"ckpt_path={ckpt}"], config="eval")
    assert f"its stored config sets {key}._target_" in line and "refusing to build it" in line, line
    assert not marker.exists()


def test_an_edited_checkpoint_with_an_interpolation_is_refused(tmp_path: Path, earlier_run: Path, capsys):
    ckpt = edited_checkpoint(earlier_run, tmp_path / "edited.ckpt", _set("data.cache_dir", "${oc.env:HOME}"))
    line = refused(tmp_path, earlier_run, capsys, [f"ckpt_path={ckpt}"], config="eval")
    assert "interpolation at data.cache_dir" in line, line


def test_a_stored_trainer_or_logger_is_never_built(tmp_path: Path, earlier_run: Path):
    """Evaluation takes its trainer, callbacks and loggers from its own config: the stored ones are
    dropped, whatever they name, and the checkpoint evaluates as before."""
    marker = tmp_path / "MARKER"
    node = {"_target_": "os.system", "_args_": [f"touch {marker}"]}

    def edit(config: dict) -> None:
        config["trainer"] = node
        config["logger"] = {"csv": node}

    ckpt = edited_checkpoint(earlier_run, tmp_path / "edited.ckpt", edit)
    cfg = compose_train([f"ckpt_path={ckpt}"], output_dir=tmp_path / "eval", config_name="eval")
    result = run_guarded(eval_job, cfg, "fuselab-eval")
    assert result is not None and "test/acc" in result["metrics"]
    assert not marker.exists()


class _Payload:
    """A pickle that runs a command when it is loaded unsafely."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize(
    ("config", "setting"), [("eval", "ckpt_path"), ("train", "ckpt_path"), ("train", "model.init_from")]
)
def test_a_pickled_payload_as_checkpoint_is_refused_unrun(
    config: str, setting: str, tmp_path: Path, earlier_run: Path, capsys
):
    import pickle

    marker = tmp_path / "MARKER"
    evil = tmp_path / "shared.ckpt"
    evil.write_bytes(pickle.dumps(_Payload(marker)))
    extra = [] if config == "eval" else [*SMALL_DATA, *FAST]
    line = refused(tmp_path, earlier_run, capsys, [*extra, f"{setting}={evil}"], config=config)
    assert f"{setting}={evil} is not a readable checkpoint" in line and "never unpickles" in line, line
    assert "weights_only" not in line  # torch's advice to load it unsafely is not passed on
    assert not marker.exists()


# ---- someone else's data through data=hf: refused in one line at preparation ------------------
def _hf_source(root: Path, edit=None) -> Path:
    """train.parquet and test.parquet of a small labelled set; ``edit(split, columns)`` changes it
    (``EMPTY_TEST``: a test file with the schema and no row)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 30), ("test", 9)):
        cols = {
            "s": rng.normal(size=(n, 4, 3)).astype(np.float32).tolist(),
            "v": rng.normal(size=(n, 4)).astype(np.float32).tolist(),
            "t": rng.integers(0, 10, size=(n, 5)).tolist(),
            "y": (np.arange(n) % 3).tolist(),
            "name": [["cat", "dog", "owl"][i % 3] for i in range(n)],
        }
        if edit not in (None, EMPTY_TEST):
            edit(split, cols)
        table = pa.table(cols)
        pq.write_table(
            table.slice(0, 0) if edit is EMPTY_TEST and split == "test" else table, root / f"{split}.parquet"
        )
    return root


EMPTY_TEST = object()


def _in_test(column, row, value):
    def edit(split, cols):
        if split == "test":
            cols[column][row] = value

    return edit


COLUMNS = (
    "data.columns={s: {column: s, kind: sequence}, v: {column: v, kind: vector}, "
    "t: {column: t, kind: tokens, vocab_size: 10}}"
)
HF_CASES = {
    "NaN in the test split only": (
        _in_test("v", 4, [0.0, float("nan"), 0.0, 0.0]),
        [],
        r"row 4 of the prepared test split, column 'v'.*non-finite value \(nan\)",
    ),
    "a label unseen in train": (
        _in_test("name", 2, "cow"),
        ["data.target_column=name"],
        r"row 2 of the test split: label 'cow' never occurs in train",
    ),
    "a negative label": (_in_test("y", 1, -1), ["data.target_column=y"], r"a class id -1, outside \[0, 3\)"),
    "a token id at vocab_size": (
        _in_test("t", 3, [1, 2, 10, 4, 5]),
        [],
        r"a token id 10, outside \[0, 10\) \(its vocab_size is 10\)",
    ),
    "a step of another width": (
        _in_test("s", 5, [[0.0, 1.0]] * 4),
        [],
        r"row 5 of the prepared test split, column 's'.*steps of 2 features",
    ),
    "val_fraction=0": (None, ["data.val_fraction=0"], r"data.val_fraction=0: .*strictly between 0 and 1"),
    "val_fraction=1": (None, ["data.val_fraction=1"], r"data.val_fraction=1: .*strictly between 0 and 1"),
    "an empty test split": (EMPTY_TEST, [], r"the test split is empty \(test.parquet holds no row\)"),
    "multilabel on class ids": (
        None,
        ["data.target_kind=multilabel", "data.target_column=y"],
        r"a multilabel value 2, outside \[0, 2\)",
    ),
}


@pytest.mark.parametrize("case", sorted(HF_CASES))
def test_refused_data_from_someone_else(case: str, tmp_path: Path, earlier_run: Path, capsys):
    edit, extra, expect = HF_CASES[case]
    source = _hf_source(tmp_path / "source", edit)
    target = [] if any(o.startswith("data.target_column") for o in extra) else ["data.target_column=y"]
    line = refused(tmp_path, earlier_run, capsys, ["data=hf", f"data.source={source}", COLUMNS, *target, *extra, *FAST])
    assert re.search(expect, line), line
