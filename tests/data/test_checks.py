"""Every split is checked at preparation: a value no model can take is refused with its split,
row and column before anything is cached, and data=hf settings that cannot split are refused."""

from __future__ import annotations

import re
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fuselab.data.checks import BLOCK, check_splits
from fuselab.data.datasets.hf import HFDataModule
from fuselab.data.specs import DataDescription, ModalitySpec, TargetSpec
from fuselab.errors import ConfigError

SEQ = ModalitySpec("s", "sequence", (None, 3))
TOK = ModalitySpec("t", "tokens", (None,), vocab_size=10)
VEC = ModalitySpec("v", "vector", (4,))


def rows(n: int, seed: int = 0, classes: int = 3) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    return {
        "s": [rng.normal(size=(int(rng.integers(1, 5)), 3)).astype(np.float32).tolist() for _ in range(n)],
        "t": [rng.integers(0, 10, size=int(rng.integers(1, 5))).tolist() for _ in range(n)],
        "v": rng.normal(size=(n, 4)).astype(np.float32).tolist(),
        "label": (np.arange(n) % classes).tolist(),
    }


def splits(edit=None, target: TargetSpec | None = None, n: int = 12) -> tuple[datasets.DatasetDict, DataDescription]:
    parts = {s: rows(n, seed=i) for i, s in enumerate(("train", "val", "test"))}
    if edit is not None:
        edit(parts)
    dsd = datasets.DatasetDict({s: datasets.Dataset.from_dict(p) for s, p in parts.items()})
    description = DataDescription({"s": SEQ, "t": TOK, "v": VEC}, target or TargetSpec("multiclass", 3))
    return dsd, description


def test_clean_splits_pass():
    check_splits(*splits(), "label", "toy")


def _set(split: str, column: str, row: int, value):
    def edit(parts):
        parts[split][column][row] = value

    return edit


CASES = {
    "nan feature in test only": (
        _set("test", "v", 5, [0.0, float("nan"), 0.0, 0.0]),
        r"row 5 of the prepared test.*'v'.*non-finite value \(nan\)",
    ),
    "inf step in train": (
        _set("train", "s", 2, [[0.0, float("inf"), 1.0]]),
        r"row 2 of the prepared train.*'s'.*non-finite value \(inf\)",
    ),
    "step of another width": (
        _set("val", "s", 7, [[0.0, 1.0]]),
        r"row 7 of the prepared val.*steps of 2 features where the first rows have 3",
    ),
    "empty sequence": (_set("train", "s", 4, []), r"row 4 .*'s'.*an empty sequence"),
    "token id at vocab_size": (
        _set("test", "t", 3, [1, 10]),
        r"row 3 of the prepared test.*a token id 10, outside \[0, 10\) \(its vocab_size is 10\)",
    ),
    "negative token id": (_set("train", "t", 0, [-1]), r"a token id -1, outside"),
    "class id at num_outputs": (
        _set("test", "label", 6, 3),
        r"row 6 of the prepared test.*a class id 3, outside \[0, 3\).*ids must be 0 to 2",
    ),
    "negative class id": (_set("val", "label", 1, -2), r"a class id -2"),
    "missing value": (_set("train", "v", 9, None), r"row 9 .*a missing value \(null\)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_values_are_refused_naming_split_row_and_column(case: str):
    edit, expect = CASES[case]
    with pytest.raises(ConfigError) as info:
        check_splits(*splits(edit), "label", "toy")
    assert re.search(expect, str(info.value)), str(info.value)
    assert str(info.value).startswith("dataset 'toy': ")


def test_a_class_missing_from_train_is_refused_in_test():
    def edit(parts):
        parts["train"]["label"] = [0, 1] * 6  # class 2 only in val and test

    with pytest.raises(ConfigError, match=r"prepared val split, column 'label': class 2 never occurs in train"):
        check_splits(*splits(edit), "label", "toy")


def test_multilabel_and_regression_targets():
    def labels(values):
        def edit(parts):
            for p in parts.values():
                p["label"] = [list(values)] * len(p["label"])

        return edit

    check_splits(*splits(labels([0, 1, 1]), TargetSpec("multilabel", 3)), "label", "toy")
    with pytest.raises(ConfigError, match=r"a multilabel value 2, outside \[0, 2\) \(each label is 0 or 1\)"):
        check_splits(*splits(labels([0, 2, 1]), TargetSpec("multilabel", 3)), "label", "toy")

    def scores(parts):
        for p in parts.values():
            p["label"] = [0.5] * len(p["label"])
        parts["test"]["label"][2] = float("nan")

    with pytest.raises(ConfigError, match=r"row 2 of the prepared test.*non-finite value \(nan\)"):
        check_splits(*splits(scores, TargetSpec("regression", 1)), "label", "toy")


def test_the_first_bad_row_is_found_past_a_block():
    """The failing column is rescanned a block at a time: a bad row far down is still named."""
    n = BLOCK + 37

    def edit(parts):
        parts["train"]["v"][n - 1] = [0.0, 0.0, float("nan"), 0.0]

    with pytest.raises(ConfigError, match=rf"row {n - 1} of the prepared train"):
        check_splits(*splits(edit, n=n), "label", "toy")


# ---- data=hf: the source row, the splits ----------------------------------------------------
def write_parquet(root: Path, n_train: int = 30, n_test: int = 10, empty_row: int | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        seqs = [rng.normal(size=(4, 3)).tolist() for _ in range(n)]
        if split == "train" and empty_row is not None:
            seqs[empty_row] = []
        table = pa.table(
            {"s": pa.array(seqs, type=pa.list_(pa.list_(pa.float32()))), "label": (np.arange(n) % 2).tolist()}
        )
        pq.write_table(table, root / f"{split}.parquet")
    return root


def hf(root: Path, tmp_path: Path, **kwargs) -> HFDataModule:
    columns = {"s": {"column": "s", "kind": "sequence"}}
    return HFDataModule(str(root), columns=columns, cache_dir=str(tmp_path / "cache"), batch_size=4, **kwargs)


def test_hf_names_the_source_row_of_an_empty_sequence(tmp_path: Path):
    """Validation is carved from train (shuffled), so the message names the row of the source."""
    root = write_parquet(tmp_path / "set", empty_row=17)
    with pytest.raises(ConfigError, match=r"row 17 of the source's train split .* holds an empty sequence"):
        hf(root, tmp_path).prepare_data()
    assert not any((tmp_path / "cache").rglob("fuselab_prepared.json")), "a refused dataset was cached"


@pytest.mark.parametrize("fraction", [0, 1, 1.5])
def test_hf_refuses_a_val_fraction_that_cannot_split(tmp_path: Path, fraction: float):
    with pytest.raises(ConfigError, match=rf"data.val_fraction={fraction}: .*strictly between 0 and 1"):
        hf(write_parquet(tmp_path / "set"), tmp_path, val_fraction=fraction)


def test_hf_names_an_empty_split_file(tmp_path: Path):
    root = write_parquet(tmp_path / "set", n_test=0)
    with pytest.raises(ConfigError, match=r"the test split is empty \(test.parquet holds no row\)"):
        hf(root, tmp_path).prepare_data()


def write_labelled(root: Path, train_labels: list, test_labels: list) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, labels in (("train", train_labels), ("test", test_labels)):
        table = pa.table({"v": rng.normal(size=(len(labels), 4)).tolist(), "y": labels})
        pq.write_table(table, root / f"{split}.parquet")
    return root


def test_hf_string_labels_become_sorted_class_ids_with_their_names(tmp_path: Path):
    names = ["dog", "cat", "bird"]
    root = write_labelled(tmp_path / "set", [names[i % 3] for i in range(30)], [names[i % 3] for i in range(9)])
    dm = HFDataModule(
        str(root), columns={"v": {"column": "v", "kind": "vector"}}, target_column="y", cache_dir=str(tmp_path / "c")
    )
    target = dm.describe().target
    assert target.num_outputs == 3 and target.class_names == ("bird", "cat", "dog")
    dm.setup()
    test_ids = [int(row["label"]) for row in dm.splits["test"]]
    assert test_ids == [2, 1, 0] * 3  # dog, cat, bird in the order of the source


def test_hf_a_string_label_unseen_in_train_is_refused(tmp_path: Path):
    root = write_labelled(tmp_path / "set", ["cat", "dog"] * 15, ["cat", "dog", "cow"])
    dm = HFDataModule(
        str(root), columns={"v": {"column": "v", "kind": "vector"}}, target_column="y", cache_dir=str(tmp_path / "c")
    )
    with pytest.raises(
        ConfigError, match=r"row 2 of the test split: label 'cow' never occurs in train.*\['cat', 'dog'\]"
    ):
        dm.prepare_data()


def test_hf_class_label_feature_keeps_its_names(tmp_path: Path):
    features = datasets.Features(
        {"v": datasets.Sequence(datasets.Value("float32")), "y": datasets.ClassLabel(names=["no", "yes"])}
    )
    part = {"v": [[0.0, 1.0]] * 10, "y": [0, 1] * 5}
    dsd = datasets.DatasetDict({s: datasets.Dataset.from_dict(part, features=features) for s in ("train", "test")})
    dsd.save_to_disk(str(tmp_path / "set"))
    dm = HFDataModule(
        str(tmp_path / "set"),
        columns={"v": {"column": "v", "kind": "vector"}},
        target_column="y",
        cache_dir=str(tmp_path / "c"),
    )
    assert dm.describe().target.class_names == ("no", "yes")
