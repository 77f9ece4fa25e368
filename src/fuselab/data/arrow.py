"""Batches gathered straight from a prepared split's memory-mapped Arrow record batches.

``datasets`` formats rows one by one; for fuselab's columns (sequences, token lists, fixed-size
arrays) reading the record batches directly is about ten times faster. This path relies on two
attributes that ``datasets`` does not document (``Dataset._indices`` and ``Dataset.data.table``):
:func:`fast_path_available` checks them, and when they are missing or a layout is unknown the
split falls back to ``datasets``' own row formatting and says so once in the log.
``tests/data/test_arrow.py`` fails loudly if a new ``datasets`` release removes them.
"""

from __future__ import annotations

import logging
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
from torch.utils.data import Dataset

from fuselab.data.specs import ModalitySpec
from fuselab.data.stores import ImageStore

log = logging.getLogger(__name__)

Chunks = tuple[list[pa.RecordBatch], np.ndarray]
_warned: set[str] = set()


def _fall_back(reason: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        log.warning("fast Arrow batch reading is off (%s); batches come from datasets' row formatting", reason)


def fast_path_available(ds: datasets.Dataset) -> bool:
    """True when ``ds`` exposes the private attributes the fast path reads and holds no
    index mapping (a ``select``/``shuffle`` view must go through ``datasets``)."""
    if not hasattr(ds, "_indices") or not hasattr(getattr(ds, "data", None), "table"):
        _fall_back(f"datasets {datasets.__version__} has no Dataset._indices or Dataset.data.table")
        return False
    return ds._indices is None


def record_batches(ds: datasets.Dataset) -> Chunks:
    """The memory-mapped record batches of a split (zero-copy) and their first row numbers."""
    batches = ds.data.table.to_batches()
    return batches, np.cumsum([0] + [b.num_rows for b in batches])


def gather_rows(ds: datasets.Dataset, indices: list[int], chunks: Chunks | None = None) -> pa.Table:
    """The rows ``indices`` as a small table, in order: each memory-mapped record batch takes
    its own rows (a Table.take over many chunks of extension arrays would combine the chunks,
    copying the whole column)."""
    batches, offsets = chunks or record_batches(ds)
    idx = np.asarray(indices, dtype=np.int64)
    chunk = np.searchsorted(offsets, idx, side="right") - 1
    order = np.argsort(chunk, kind="stable")
    parts = []
    for c in np.unique(chunk):
        rows = idx[order][chunk[order] == c] - offsets[c]
        parts.append(batches[c].take(pa.array(rows)))
    gathered = pa.Table.from_batches(parts)
    return gathered.take(pa.array(np.argsort(order))) if len(parts) > 1 else gathered


HELD_BYTES = 32 * 2**20  # a small column (numbers, labels, token ids) at most this big is held as numpy


class HeldColumn:
    """A small column of the split held in numpy, gathered by indexing instead of through Arrow:
    numbers (picture numbers, labels, masks: ``values[idx]``) or lists of numbers (token ids:
    ``values[offsets[i]:offsets[i + 1]]`` per row)."""

    def __init__(self, values: np.ndarray, offsets: np.ndarray | None = None) -> None:
        self.values, self.offsets = values, offsets

    def take(self, idx: np.ndarray) -> Any:
        if self.offsets is None:
            return self.values[idx]
        return [self.values[self.offsets[i] : self.offsets[i + 1]] for i in idx]


def held_columns(chunks: Chunks, specs: dict[str, ModalitySpec]) -> dict[str, HeldColumn]:
    """The split's columns of plain numbers (no nulls) and, for ``tokens`` modalities, of lists
    of numbers, each at most ``HELD_BYTES`` in all: copied once per process, so a shuffled batch
    does not touch a record batch per row for them."""
    batches, _ = chunks
    if not batches:
        return {}
    out: dict[str, HeldColumn] = {}
    for i, field in enumerate(batches[0].schema):
        arrays = [b.column(i) for b in batches]
        if any(a.null_count for a in arrays) or sum(a.nbytes for a in arrays) > HELD_BYTES:
            continue
        kind = specs[field.name].kind if field.name in specs else None
        t = field.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
            out[field.name] = HeldColumn(np.concatenate([a.to_numpy(zero_copy_only=False) for a in arrays]))
        elif kind == "tokens" and pa.types.is_list(t) and pa.types.is_integer(t.value_type):
            lengths = np.concatenate([np.diff(a.offsets.to_numpy()) for a in arrays])
            values = np.concatenate([_flat(a) for a in arrays])
            out[field.name] = HeldColumn(values, np.concatenate([[0], np.cumsum(lengths)]))
    return out


def _storage(arr: Any) -> Any:
    return arr.storage if hasattr(arr, "storage") else arr


def _flat(arr: Any) -> np.ndarray:
    while hasattr(arr, "flatten") and hasattr(arr.type, "value_type"):
        arr = arr.flatten()
    return arr.to_numpy(zero_copy_only=False)


def arrow_columns(
    ds: datasets.Dataset,
    indices: list[int],
    specs: dict[str, ModalitySpec],
    chunks: Chunks | None = None,
    held: dict[str, HeldColumn] | None = None,
) -> dict[str, Any]:
    """{column: values} for the rows ``indices``: a list of (T, D) or (T,) arrays for
    ``sequence``/``tokens`` columns, one stacked (N, *shape) array for image/vector ones, and the
    target and present columns as (N,) or (N, K) arrays. Columns in ``held`` are indexed in numpy;
    the others are gathered from the record batches."""
    held = held or {}
    names = ds.format["columns"] or ds.column_names
    idx = np.asarray(indices, dtype=np.int64)
    out: dict[str, Any] = {name: held[name].take(idx) for name in names if name in held}
    rest = [name for name in names if name not in held]
    if not rest:
        return out
    table = gather_rows(ds, indices, chunks)
    n = len(indices)
    for name in rest:
        arr = _storage(table.column(name).combine_chunks())
        spec = specs.get(name)
        kind = spec.kind if spec else None
        if kind in ("sequence", "tokens", "video"):
            offsets = arr.offsets.to_numpy()
            flat = _flat(arr)
            steps = offsets - offsets[0]
            per_step = flat.size // max(int(steps[-1]), 1) if steps[-1] else 1
            flat = flat.reshape(-1, per_step) if kind != "tokens" else flat
            out[name] = np.split(flat, steps[1:-1])
        elif spec is None and pa.types.is_list(arr.type) and not pa.types.is_primitive(arr.type.value_type):
            out[name] = arr.to_pylist()  # e.g. the reference texts of a generation sample
        elif hasattr(arr.type, "value_type"):
            flat = _flat(arr)
            out[name] = flat.reshape(n, -1) if spec is None else flat.reshape(n, *spec.shape)
        else:
            out[name] = arr.to_numpy(zero_copy_only=False)
    return out


class ArrowSplit(Dataset):
    """A memory-mapped split whose ``__getitems__`` fetches a whole batch in one gather
    (see the module docstring), falling back to ``datasets`` for layouts it does not know."""

    def __init__(
        self,
        table: datasets.Dataset,
        specs: dict[str, ModalitySpec] | None = None,
        stores: dict[str, ImageStore] | None = None,
    ) -> None:
        self.table = table
        self.specs = specs or {}
        self.stores = {m: s for m, s in (stores or {}).items() if m in table.column_names}
        self.fast = bool(specs) and fast_path_available(table)
        self._chunks: Chunks | None = None  # per process, never pickled
        self._held: dict[str, HeldColumn] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_chunks": None, "_held": None}

    def __len__(self) -> int:
        return len(self.table)

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        columns = self._gather(list(indices))
        for m, store in self.stores.items():  # picture numbers -> float pictures
            columns[m] = store.column(columns[m])
        return columns

    def _gather(self, indices: list[int]) -> dict[str, Any]:
        if self.fast:
            try:
                if self._chunks is None:
                    self._chunks = record_batches(self.table)
                    self._held = held_columns(self._chunks, self.specs)
                    rest = [n for n in self.table.column_names if n not in self._held]
                    self._chunks = ([b.select(rest) for b in self._chunks[0]], self._chunks[1])
                return arrow_columns(self.table, indices, self.specs, self._chunks, self._held)
            except (TypeError, ValueError, AttributeError, KeyError) as exc:
                _fall_back(f"{type(exc).__name__}: {exc}")
                self.fast = False
        return dict(self.table[indices])

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])
