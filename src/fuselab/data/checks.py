"""Every split checked against the data description before it is cached: what a model would
otherwise meet as a NaN loss, an ``IndexError`` after training or a shape error mid-epoch is
refused at preparation, naming the split, the row and the column.

Checked per modality: float values finite (sequence, vector, image, video), every step of a
sequence as wide as its spec, no empty sequence, token ids in ``[0, vocab_size)``. Per target:
class ids in ``[0, num_outputs)`` and, in val and test, seen in train; multilabel rows of
``num_outputs`` zeros and ones; regression targets finite; generation token ids inside the
vocabulary. Whole columns are checked at once on their Arrow buffers; only a column that fails is
scanned again, a block of rows at a time, to name the first bad row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fuselab.data.specs import DataDescription, ModalitySpec, TargetSpec
from fuselab.errors import ConfigError

BLOCK = 1024
# a column's check: None when it holds, else what is wrong with it
Check = Callable[[pa.Array], "str | None"]


def _array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return arr.storage if isinstance(arr.type, pa.ExtensionType) else arr


def _is_list(arr: pa.Array) -> bool:
    return pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type)


def leaves(arr: pa.Array) -> pa.Array:
    """The scalar values below every level of nesting."""
    arr = _array(arr)
    while _is_list(arr):
        arr = _array(arr.flatten())
    return arr


def _nulls(arr: pa.Array) -> str | None:
    level = _array(arr)
    while True:
        if level.null_count:
            return "a missing value (null)"
        if not _is_list(level):
            return None
        level = _array(level.flatten())


def finite(arr: pa.Array) -> str | None:
    values = leaves(arr)
    if len(values) and pa.types.is_floating(values.type) and not pc.all(pc.is_finite(values)).as_py():
        bad = values.filter(pc.invert(pc.is_finite(values)))
        return f"a non-finite value ({bad[0].as_py()})"
    return None


def non_empty(arr: pa.Array) -> str | None:
    arr = _array(arr)
    if _is_list(arr) and len(arr) and pc.min(pc.list_value_length(arr)).as_py() == 0:
        return "an empty sequence (no step)"
    return None


def step_width(width: int) -> Check:
    def check(arr: pa.Array) -> str | None:
        steps = _array(_array(arr).flatten())
        if _is_list(steps) and len(steps):
            lengths = pc.list_value_length(steps)
            lo, hi = pc.min(lengths).as_py(), pc.max(lengths).as_py()
            if lo != width or hi != width:
                return f"steps of {hi if hi != width else lo} features where the first rows have {width}"
        return None

    return check


def value_range(low: int, high: int, what: str, note: str = "") -> Check:
    def check(arr: pa.Array) -> str | None:
        values = leaves(arr)
        if not len(values):
            return None
        lo, hi = pc.min(values).as_py(), pc.max(values).as_py()
        if lo < low or hi >= high:
            bad = lo if lo < low else hi
            return f"{what} {bad}, outside [{low}, {high}){note}"
        return None

    return check


def integral(arr: pa.Array) -> str | None:
    values = leaves(arr)
    if len(values) and pa.types.is_floating(values.type):
        v = values.to_numpy(zero_copy_only=False)
        if not np.all(np.isfinite(v)) or not np.all(v == np.round(v)):
            bad = v[~np.isfinite(v) | (v != np.round(v))][0]
            return f"a class label {bad} that is not a whole number"
    return None


def modality_checks(spec: ModalitySpec) -> list[Check]:
    checks: list[Check] = [_nulls]
    if spec.kind in ("sequence", "tokens", "video"):
        checks.append(non_empty)
    if spec.kind == "sequence" and spec.shape[1] is not None:
        checks.append(step_width(int(spec.shape[1])))
    if spec.kind == "tokens" and spec.vocab_size:
        checks.append(value_range(0, int(spec.vocab_size), "a token id", f" (its vocab_size is {spec.vocab_size})"))
    if spec.kind != "tokens":
        checks.append(finite)
    return checks


def target_checks(target: TargetSpec) -> list[Check]:
    checks: list[Check] = [_nulls]
    if target.kind == "multiclass":
        n = int(target.num_outputs)
        checks += [integral, value_range(0, n, "a class id", f" (num_outputs={n}; ids must be 0 to {n - 1})")]
    elif target.kind == "multilabel":
        checks += [finite, value_range(0, 2, "a multilabel value", " (each label is 0 or 1)")]
    elif target.kind == "regression":
        checks.append(finite)
    elif target.kind == "generation":
        n = int(target.num_outputs)
        checks.append(value_range(0, n, "a token id", f" (the vocabulary has {n})"))
    return checks


def first_bad_row(column: pa.Array, check: Check) -> tuple[int, str]:
    """The first row of ``column`` that ``check`` refuses, and why (``column`` is known to fail)."""
    arr = _array(column)
    for start in range(0, len(arr), BLOCK):
        block = arr.slice(start, BLOCK)
        if check(block) is None:
            continue
        for i in range(len(block)):
            why = check(block.slice(i, 1))
            if why is not None:
                return start + i, why
    return -1, str(check(arr))


ROWS = 16 * BLOCK  # rows read at a time: memory stays bounded whatever the split's size


def _batches(table: datasets.Dataset) -> Iterator[tuple[int, pa.Table]]:
    """(first row, rows) of ``table`` as Arrow tables, ``ROWS`` at a time (selections included)."""
    offset = 0
    for batch in table.with_format("arrow").iter(batch_size=ROWS):
        yield offset, batch
        offset += batch.num_rows


def check_splits(splits: datasets.DatasetDict, description: DataDescription, target_column: str, dataset: str) -> None:
    """Refuse the first value of any split that a model could not take (see the module doc)."""
    columns: dict[str, tuple[str, list[Check]]] = {
        name: (f"modality {name}", modality_checks(spec)) for name, spec in description.modalities.items()
    }
    if target_column:
        columns[target_column] = ("the target", target_checks(description.target))
    multiclass = description.target.kind == "multiclass" and bool(target_column)
    seen: set[int] = set()
    for split in sorted(splits, key=lambda s: s != "train"):  # train first: the classes it shows
        for offset, batch in _batches(splits[split]):
            for column, (what, checks) in columns.items():
                if column not in batch.column_names:
                    continue
                arr = _array(batch.column(column))
                for check in checks:
                    if check(arr) is None:
                        continue
                    row, why = first_bad_row(arr, check)
                    raise ConfigError(
                        f"dataset '{dataset}': row {offset + row} of the prepared {split} split, "
                        f"column '{column}' ({what}): {why}. Fix that row of the source (or drop it) and run again"
                    )
            if multiclass and target_column in batch.column_names:
                labels = np.asarray(leaves(batch.column(target_column)))
                if split == "train":
                    seen.update(np.unique(labels).tolist())
                    continue
                new = ~np.isin(labels, list(seen))
                if new.any():
                    row = int(np.argmax(new))
                    raise ConfigError(
                        f"dataset '{dataset}': row {offset + row} of the prepared {split} split, "
                        f"column '{target_column}': class {labels[row]} never occurs in train "
                        f"(train has {len(seen)} classes: {sorted(seen)[:10]}). A model cannot learn it: "
                        "move such rows to train, or drop them from the source"
                    )
