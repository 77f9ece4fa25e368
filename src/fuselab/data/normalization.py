"""Normalisation statistics of the float modalities (``data.normalize=true``): mean and std per
feature (sequence, vector) or per channel (image), from the train split only, streamed a chunk of
rows at a time, computed once per prepared dataset and kept beside it (``norm_stats.npz``)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from fuselab.data.specs import ModalitySpec
from fuselab.data.stores import ImageStore

STATS_FILE = "norm_stats.npz"
Stats = dict[str, tuple[np.ndarray, np.ndarray]]


def train_statistics(
    table: datasets.Dataset,
    specs: dict[str, ModalitySpec],
    chunk: int = 2048,
    stores: dict[str, ImageStore] | None = None,
) -> Stats:
    """Mean and std per feature (sequence, vector), per channel (image), over a split; a stored
    image column's pictures are read a chunk at a time, each weighted by the rows that show it."""
    stores = stores or {}
    floats = [m for m, s in specs.items() if s.kind in ("sequence", "vector", "image") and m in table.column_names]
    sums: dict[str, Any] = {m: [0.0, 0.0, 0] for m in floats}
    for m in floats:
        if m in stores:
            sums[m] = _stored_sums(table, m, stores[m], chunk)
    view = table.with_format("numpy", columns=[m for m in floats if m not in stores])
    for start in range(0, len(view), chunk):
        rows = view[start : start + chunk]
        for m in floats:
            kind = specs[m].kind
            if m in stores:
                continue
            if kind == "sequence":
                x = np.concatenate([np.asarray(a, dtype=np.float64) for a in rows[m] if len(a)], axis=0)
            elif kind == "image":
                arr = np.asarray(rows[m], dtype=np.float64)
                x = arr.transpose(0, 2, 3, 1).reshape(-1, arr.shape[1])
            else:
                x = np.asarray(rows[m], dtype=np.float64)
            sums[m][0] = sums[m][0] + x.sum(0)
            sums[m][1] = sums[m][1] + (x**2).sum(0)
            sums[m][2] += len(x)
    stats = {}
    for m, (s1, s2, n) in sums.items():
        mean = s1 / max(n, 1)
        std = np.sqrt(np.maximum(s2 / max(n, 1) - mean**2, 0.0))
        std = np.where(std < 1e-8, 1.0, std)
        shape = (-1, 1, 1) if specs[m].kind == "image" else (-1,)
        stats[m] = (mean.astype(np.float32).reshape(shape), std.astype(np.float32).reshape(shape))
    return stats


def _stored_sums(table: datasets.Dataset, m: str, store: ImageStore, chunk: int) -> list[Any]:
    """Per-channel sums of the pictures a split's rows show (a picture counted once per row)."""
    rows = np.zeros(store.info.count, dtype=np.float64)
    for batch in table.with_format("numpy", columns=[m]).iter(batch_size=16 * chunk):
        rows += np.bincount(np.asarray(batch[m], dtype=np.int64), minlength=store.info.count)
    s1, s2, n = 0.0, 0.0, 0
    for start in range(0, store.info.count, chunk):
        numbers = np.arange(start, min(start + chunk, store.info.count))
        arr = store.floats(numbers).astype(np.float64)
        w = rows[numbers][:, None, None, None]
        s1 = s1 + (arr * w).sum((0, 2, 3))
        s2 = s2 + (arr**2 * w).sum((0, 2, 3))
        n += int(rows[numbers].sum()) * arr.shape[2] * arr.shape[3]
    return [s1, s2, n]


def stored_statistics(
    prepared: Path,
    train: datasets.Dataset,
    specs: dict[str, ModalitySpec],
    stores: dict[str, ImageStore] | None = None,
) -> Stats:
    """The statistics kept beside the prepared dataset at ``prepared``, computed from ``train``
    (every float modality of ``specs``) and written atomically the first time."""
    path = prepared / STATS_FILE
    if not path.exists():
        stats = train_statistics(train, specs, stores=stores)
        tmp = path.with_name(f".{uuid.uuid4().hex[:8]}.npz")
        np.savez(tmp, **{f"{m}__{k}": v for m, (mean, std) in stats.items() for k, v in (("mean", mean), ("std", std))})
        os.replace(tmp, path)
    raw = np.load(path)
    names = {k.rsplit("__", 1)[0] for k in raw.files}
    return {m: (raw[f"{m}__mean"], raw[f"{m}__std"]) for m in names}
