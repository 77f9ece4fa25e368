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

STATS_FILE = "norm_stats.npz"
Stats = dict[str, tuple[np.ndarray, np.ndarray]]


def train_statistics(table: datasets.Dataset, specs: dict[str, ModalitySpec], chunk: int = 2048) -> Stats:
    """Mean and std per feature (sequence, vector), per channel (image), over a split."""
    floats = [m for m, s in specs.items() if s.kind in ("sequence", "vector", "image") and m in table.column_names]
    sums: dict[str, Any] = {m: [0.0, 0.0, 0] for m in floats}
    view = table.with_format("numpy", columns=floats)
    for start in range(0, len(view), chunk):
        rows = view[start : start + chunk]
        for m in floats:
            kind = specs[m].kind
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


def stored_statistics(prepared: Path, train: datasets.Dataset, specs: dict[str, ModalitySpec]) -> Stats:
    """The statistics kept beside the prepared dataset at ``prepared``, computed from ``train``
    (every float modality of ``specs``) and written atomically the first time."""
    path = prepared / STATS_FILE
    if not path.exists():
        stats = train_statistics(train, specs)
        tmp = path.with_name(f".{uuid.uuid4().hex[:8]}.npz")
        np.savez(tmp, **{f"{m}__{k}": v for m, (mean, std) in stats.items() for k, v in (("mean", mean), ("std", std))})
        os.replace(tmp, path)
    raw = np.load(path)
    names = {k.rsplit("__", 1)[0] for k in raw.files}
    return {m: (raw[f"{m}__mean"], raw[f"{m}__std"]) for m in names}
