"""Labels as other people's datasets name them: strings, ClassLabel, lists of names (multilabel),
class ids checked; unseen classes refused or dropped and counted; the names carried to every output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FAST, compose_train

from fuselab.data.datasets.hf import HFDataModule
from fuselab.errors import ConfigError

VECTOR = {"v": {"column": "v", "kind": "vector"}}


def write_split_files(root: Path, labels: dict[str, list], width: int = 4, signal: dict | None = None) -> Path:
    """A parquet per split: a vector ``v`` (shifted by the label's number when ``signal`` maps
    labels to numbers, so a model can learn it) and the label column ``y``."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, ys in labels.items():
        v = rng.normal(size=(len(ys), width))
        if signal:
            v[:, 0] += [3.0 * signal[y] for y in ys]
        pq.write_table(pa.table({"v": v.tolist(), "y": ys}), root / f"{split}.parquet")
    return root


def hf(root: Path, tmp_path: Path, **kwargs) -> HFDataModule:
    return HFDataModule(str(root), columns=VECTOR, target_column="y", cache_dir=str(tmp_path / "c"), **kwargs)


def test_lists_of_names_become_multilabel_rows_over_the_sorted_names(tmp_path: Path):
    train = [["drama"], ["comedy", "drama"], [], ["action"]] * 5
    root = write_split_files(tmp_path / "set", {"train": train, "validation": train[:4], "test": [["comedy"], []]})
    dm = hf(root, tmp_path, target_kind="multilabel")
    target = dm.describe().target
    assert target.kind == "multilabel" and target.class_names == ("action", "comedy", "drama")
    dm.setup()
    rows = [list(map(float, r["label"])) for r in dm.splits["train"].select(range(4))]
    assert rows == [[0, 0, 1], [0, 1, 1], [0, 0, 0], [1, 0, 0]]
    assert [list(map(float, r["label"])) for r in dm.splits["test"]] == [[0, 1, 0], [0, 0, 0]]


def test_a_name_unseen_in_train_is_refused_or_dropped_and_counted(tmp_path: Path):
    labels = {"train": [["a"], ["b"]] * 10, "validation": [["a"], ["b"]], "test": [["a"], ["a", "c"], ["b"]]}
    root = write_split_files(tmp_path / "set", labels)
    refused = r"row 1 of the test split: label 'c' never occurs in train.*unseen_labels=drop"
    with pytest.raises(ConfigError, match=refused):
        hf(root, tmp_path, target_kind="multilabel").prepare_data()
    dm = hf(root, tmp_path, target_kind="multilabel", unseen_labels="drop")
    dm.setup()
    assert len(dm.splits["test"]) == 2
    assert dm.prepared_marker()["notes"]["unseen_label_rows"] == {"train": 0, "val": 0, "test": 1}


def test_a_class_id_unseen_in_train_is_dropped_and_counted_when_asked(tmp_path: Path):
    root = write_split_files(tmp_path / "set", {"train": [0, 1] * 10, "validation": [0, 1], "test": [0, 2, 1, 2]})
    with pytest.raises(ConfigError, match=r"row 1 of the test split: label 2 never occurs in train"):
        hf(root, tmp_path, num_outputs=3).prepare_data()
    dm = hf(root, tmp_path, num_outputs=3, unseen_labels="drop")
    dm.setup()
    assert [int(r["label"]) for r in dm.splits["test"]] == [0, 1]
    assert dm.prepared_marker()["notes"]["unseen_label_rows"]["test"] == 2


def test_float_and_negative_class_ids_are_refused_for_multiclass(tmp_path: Path):
    floats = write_split_files(tmp_path / "f", {"train": [0.0, 1.0] * 5, "test": [0.0, 1.0]})
    with pytest.raises(ConfigError, match=r"holds floats \(float64\).*Cast the column to integers.*regression"):
        hf(floats, tmp_path).prepare_data()
    negative = write_split_files(tmp_path / "n", {"train": [0, -1, 1] * 5, "test": [0, 1]})
    with pytest.raises(ConfigError, match=r"row 1 of the train split has class -1; class ids start at 0"):
        hf(negative, tmp_path).prepare_data()


def test_string_names_reach_the_summary_confusion_matrix_predictions_and_eval(tmp_path: Path):
    import pandas as pd

    from fuselab.runs.job import eval_job, train_job

    names = {"cat": 0, "dog": 1, "bird": 2}
    cycle = ["cat", "dog", "bird"]
    labels = {"train": cycle * 40, "validation": cycle * 4, "test": cycle * 5}
    root = write_split_files(tmp_path / "set", labels, signal=names)
    overrides = [
        "data=hf",
        f"data.source={root}",
        "data.target_column=y",
        "data.columns={v: {column: v, kind: vector}}",
        "data.batch_size=16",
        *FAST,
    ]
    summary = train_job(compose_train(overrides, output_dir=tmp_path / "run"))
    assert summary["status"] == "completed"
    assert list(summary["per_class"]) == ["bird", "cat", "dog"]  # sorted, as the ids are
    with open(tmp_path / "run" / "confusion_matrix.csv") as f:
        header = next(csv.reader(f))
    assert header[1:] == ["bird", "cat", "dog"]
    eval_overrides = [f"ckpt_path={summary['best_checkpoint']}", "save_predictions=true"]
    result = eval_job(compose_train(eval_overrides, output_dir=tmp_path / "eval", config_name="eval"))
    frame = pd.read_parquet(result["predictions"])
    assert len(frame) == 15 and list(frame["target_name"][:3]) == cycle
    assert {"prob_bird", "prob_cat", "prob_dog"} <= set(frame.columns)
    assert (frame["target_name"] == np.array(["bird", "cat", "dog"])[frame["target"]]).all()
    stored = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert list(stored["per_class"]) == ["bird", "cat", "dog"]  # the names came with the checkpoint
