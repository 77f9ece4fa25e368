"""Splits written a chunk of rows at a time, so a builder's peak memory does not grow with the
size of what it builds."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets


def rows_to_dataset(
    rows: Iterator[dict[str, Any]], features: datasets.Features, scratch: Path | None, chunk: int = 2000
) -> datasets.Dataset:
    """A dataset of the rows, ``chunk`` at a time: each chunk is saved under ``scratch`` and read
    back memory-mapped, and the chunks are concatenated (no copy). Without a scratch folder the
    chunks stay in memory."""
    parts: list[datasets.Dataset] = []
    batch: dict[str, list[Any]] = {k: [] for k in features}
    count = 0

    def flush() -> None:
        ds = datasets.Dataset.from_dict(batch, features=features)
        if scratch is not None:
            folder = scratch / f"part-{uuid.uuid4().hex}"  # unique across splits and calls
            ds.save_to_disk(str(folder))
            ds = datasets.load_from_disk(str(folder))
        parts.append(ds)
        for values in batch.values():
            values.clear()

    for row in rows:
        for k in features:
            batch[k].append(row[k])
        count += 1
        if count % chunk == 0:
            flush()
    if count % chunk or not parts:
        flush()
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
