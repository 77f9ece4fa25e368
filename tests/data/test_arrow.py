"""The fast batch path reads two attributes ``datasets`` does not document: fail loudly if a
release removes them, and fall back (logged once) when they are missing at run time."""

from __future__ import annotations

import logging

import datasets
import numpy as np

from fuselab.data import arrow
from fuselab.data.arrow import ArrowSplit
from fuselab.data.specs import ModalitySpec

SPECS = {"x": ModalitySpec("x", "sequence", (None, 2)), "v": ModalitySpec("v", "vector", (3,))}


def _table() -> datasets.Dataset:
    rng = np.random.default_rng(0)
    features = datasets.Features(
        {
            "x": datasets.Array2D(shape=(None, 2), dtype="float32"),
            "v": datasets.Sequence(datasets.Value("float32"), length=3),
            "label": datasets.Value("int64"),
        }
    )
    columns = {
        "x": [rng.normal(size=(t, 2)).astype(np.float32) for t in (3, 1, 4, 2)],
        "v": rng.normal(size=(4, 3)).astype(np.float32),
        "label": [0, 1, 0, 1],
    }
    return datasets.Dataset.from_dict(columns, features=features).with_format("numpy")


def test_the_private_attributes_the_fast_path_reads_still_exist():
    ds = _table()
    assert hasattr(ds, "_indices"), f"datasets {datasets.__version__} removed Dataset._indices: update data/arrow.py"
    assert hasattr(ds.data, "table"), (
        f"datasets {datasets.__version__} removed Dataset.data.table: update data/arrow.py"
    )
    assert ds._indices is None and arrow.fast_path_available(ds)
    assert not arrow.fast_path_available(ds.select([2, 0]))  # an index mapping goes through datasets


def test_fast_and_slow_paths_give_the_same_rows():
    ds = _table()
    fast, slow = ArrowSplit(ds, SPECS), ArrowSplit(ds)
    assert fast.fast and not slow.fast
    a, b = fast.__getitems__([2, 0, 3]), slow.__getitems__([2, 0, 3])
    for x_fast, x_slow in zip(a["x"], b["x"]):
        np.testing.assert_array_equal(x_fast, x_slow)
    np.testing.assert_array_equal(a["v"], np.asarray(b["v"]))
    np.testing.assert_array_equal(a["label"], b["label"])


def test_missing_attributes_fall_back_and_say_so_once(monkeypatch, caplog):
    ds = _table()
    monkeypatch.setattr(arrow, "_warned", set())
    monkeypatch.delattr(datasets.Dataset, "_indices", raising=False)
    monkeypatch.setattr(
        type(ds), "_indices", property(lambda self: (_ for _ in ()).throw(AttributeError)), raising=False
    )
    with caplog.at_level(logging.WARNING, logger="fuselab.data.arrow"):
        first, second = ArrowSplit(ds, SPECS), ArrowSplit(ds, SPECS)
    assert not first.fast and not second.fast
    assert caplog.text.count("fast Arrow batch reading is off") == 1


def test_small_columns_held_in_numpy_give_the_rows_arrow_gives(monkeypatch):
    """Labels, picture numbers and token ids over many record batches: indexed in numpy (held)
    or gathered from the batches, a shuffled batch is the same, and the same as datasets' rows."""
    rng = np.random.default_rng(1)
    parts = []
    for _ in range(5):  # five record batches
        n = int(rng.integers(3, 9))
        parts.append(
            datasets.Dataset.from_dict(
                {
                    "picture": rng.integers(0, 50, n),
                    "text": [rng.integers(2, 30, int(rng.integers(1, 6))).tolist() for _ in range(n)],
                    "label": rng.integers(0, 4, n),
                }
            )
        )
    ds = datasets.concatenate_datasets(parts).with_format("numpy")
    specs = {
        "text": ModalitySpec("text", "tokens", (None,), vocab_size=30)
    }  # picture: numbers of a store, as image columns hold
    split = ArrowSplit(ds, specs)
    order = rng.permutation(len(ds)).tolist()[:12]
    held = split.__getitems__(order)
    assert set(split._held) == {"picture", "text", "label"} and len(split._chunks[0]) == 5
    monkeypatch.setattr(arrow, "HELD_BYTES", 0)
    gathered = ArrowSplit(ds, specs).__getitems__(order)
    rows = [ds[i] for i in order]
    for name in ("picture", "label"):
        np.testing.assert_array_equal(held[name], gathered[name])
        np.testing.assert_array_equal(held[name], [r[name] for r in rows])
    for a, b, r in zip(held["text"], gathered["text"], rows):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, r["text"])
