"""``PairedDataModule``: the base of every fuselab datamodule.

A subclass says which modalities and task it has (cheap, no I/O) and how to build its splits
(heavy, run once). The base prepares the splits once as a Hugging Face ``DatasetDict`` under
``cache_dir`` (keyed by a fingerprint of everything that determines the data), memory-maps them
on ``setup``, selects ``modalities`` and serves padded batches.
"""

from __future__ import annotations

import abc
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset, Sampler

from fuselab.data.collate import PaddedCollate, present_column
from fuselab.data.specs import ModalitySpec, TaskSpec

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
DONE_MARKER = "fuselab_prepared.json"


def default_cache_dir() -> str:
    return os.environ.get("FUSELAB_CACHE_DIR", str(Path.home() / ".cache" / "fuselab"))


class ArrowSplit(Dataset):
    """A memory-mapped split; fetches whole batches in one Arrow ``take`` (``__getitems__``) and
    turns the columns into numpy arrays directly (ten times faster than ``datasets``'
    row formatting), falling back to ``datasets`` for layouts it does not know."""

    def __init__(self, table: datasets.Dataset, specs: dict[str, ModalitySpec] | None = None) -> None:
        self.table = table
        self.specs = specs or {}
        self.fast = table._indices is None and bool(specs)
        self._chunks: tuple[list[pa.RecordBatch], np.ndarray] | None = None  # per process, never pickled

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_chunks": None}

    def __len__(self) -> int:
        return len(self.table)

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        if self.fast:
            try:
                if self._chunks is None:
                    self._chunks = record_batches(self.table)
                return arrow_columns(self.table, list(indices), self.specs, self._chunks)
            except (TypeError, ValueError, AttributeError, KeyError):
                self.fast = False
        return self.table[list(indices)]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])


def record_batches(ds: datasets.Dataset) -> tuple[list[pa.RecordBatch], np.ndarray]:
    """The memory-mapped record batches of a split (zero-copy) and their first row numbers."""
    batches = ds.data.table.to_batches()
    return batches, np.cumsum([0] + [b.num_rows for b in batches])


def gather_rows(ds: datasets.Dataset, indices: list[int], chunks: tuple[list[pa.RecordBatch], np.ndarray] | None = None
                ) -> pa.Table:  # fmt: skip
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


def _storage(arr: Any) -> Any:
    return arr.storage if hasattr(arr, "storage") else arr


def _flat(arr: Any) -> np.ndarray:
    while hasattr(arr, "flatten") and hasattr(arr.type, "value_type"):
        arr = arr.flatten()
    return arr.to_numpy(zero_copy_only=False)


def arrow_columns(ds: datasets.Dataset, indices: list[int], specs: dict[str, ModalitySpec],
                  chunks: tuple[list[pa.RecordBatch], np.ndarray] | None = None) -> dict[str, Any]:  # fmt: skip
    """{column: values} for the rows ``indices``: a list of arrays for ``sequence``/``tokens``
    columns, one stacked array of the spec's shape for image/vector ones, and the target and
    present columns as arrays."""
    table = gather_rows(ds, indices, chunks)
    n = len(indices)
    out: dict[str, Any] = {}
    for name in ds.format["columns"] or table.column_names:
        arr = _storage(table.column(name).combine_chunks())
        spec = specs.get(name)
        kind = spec.kind if spec else None
        if kind in ("sequence", "tokens"):
            offsets = arr.offsets.to_numpy()
            flat = _flat(arr)
            steps = offsets - offsets[0]
            per_step = flat.size // max(int(steps[-1]), 1) if steps[-1] else 1
            flat = flat.reshape(-1, per_step) if kind == "sequence" else flat
            out[name] = np.split(flat, steps[1:-1])
        elif hasattr(arr.type, "value_type"):
            flat = _flat(arr)
            out[name] = flat.reshape(n, -1) if spec is None else flat.reshape(n, *spec.shape)
        else:
            out[name] = arr.to_numpy(zero_copy_only=False)
    return out


class EpochShuffle(Sampler[int]):
    """A random order that depends only on (seed, epoch): a run resumed at epoch k sees the same
    batches as one that was never interrupted. Lightning calls ``set_epoch`` every epoch."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.size).tolist())

    def __len__(self) -> int:
        return self.size


class PairedDataModule(pl.LightningDataModule, abc.ABC):
    """Base class. Subclasses implement ``available_modalities``, ``task_spec``,
    ``fingerprint`` and ``build``; they may set ``aligned`` (True when all sequence modalities
    share their per-sample lengths)."""

    name = "paired"
    target = "label"
    aligned = False

    def __init__(
        self,
        modalities: Sequence[str] | None = None,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        cache_dir: str | None = None,
        loader_seed: int = 0,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        available = self.modality_names()
        if modalities is None or len(modalities) == 0:
            selected = list(available)
        else:
            selected = [str(m) for m in modalities]
            unknown = [m for m in selected if m not in available]
            if unknown:
                raise ValueError(
                    f"data.modalities: {unknown} not in dataset '{self.name}'. "
                    f"It has: {list(available)}. Example: data.modalities=[{','.join(list(available)[:2])}]"
                )
            if len(set(selected)) != len(selected):
                raise ValueError(f"data.modalities lists a modality twice: {selected}")
        self.selected = selected
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.cache_dir = Path(cache_dir or default_cache_dir()).expanduser()
        self.loader_seed = int(loader_seed)
        self.normalize = bool(normalize)
        self.splits: dict[str, datasets.Dataset] = {}
        self._stats: dict[str, tuple[np.ndarray, np.ndarray]] | None = None

    # ---- what a subclass provides -------------------------------------------------------
    @abc.abstractmethod
    def available_modalities(self) -> dict[str, ModalitySpec]:
        """Every modality the dataset has, by name (cheap: no I/O)."""

    def modality_names(self) -> list[str]:
        """The names alone; override when the specs need the data (read at preparation)."""
        return list(self.available_modalities())

    @abc.abstractmethod
    def task_spec(self) -> TaskSpec:
        """What is predicted (cheap: no I/O)."""

    @abc.abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """Everything that determines the prepared data (not batch size, not modalities)."""

    @abc.abstractmethod
    def build(self) -> datasets.DatasetDict:
        """Create the train/val/test splits. Called once per fingerprint."""

    # ---- the contract every model is built from -----------------------------------------
    @property
    def modalities(self) -> dict[str, ModalitySpec]:
        available = self.available_modalities()
        return {m: available[m] for m in self.selected}

    @property
    def task(self) -> TaskSpec:
        return self.task_spec()

    # ---- preparation, cached ------------------------------------------------------------
    @property
    def prepared_dir(self) -> Path:
        blob = json.dumps({"name": self.name, **self.fingerprint()}, sort_keys=True, default=str)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
        return self.cache_dir / self.name / digest

    def preparation_notes(self) -> dict[str, Any]:
        """Anything worth keeping about the preparation (e.g. values cleaned)."""
        return {}

    def prepared_marker(self) -> dict[str, Any]:
        return json.loads((self.prepared_dir / DONE_MARKER).read_text())

    def is_prepared(self) -> bool:
        return (self.prepared_dir / DONE_MARKER).exists()

    def prepare_data(self) -> None:
        target = self.prepared_dir
        if self.is_prepared():
            return
        log.info("Preparing %s into %s (once; later runs reuse it)", self.name, target)
        dsd = self.build()
        missing = [s for s in SPLITS if s not in dsd]
        if missing:
            raise ValueError(f"{type(self).__name__}.build() returned no split(s) {missing}")
        for split in SPLITS:
            if len(dsd[split]) == 0:
                raise ValueError(f"dataset '{self.name}': split '{split}' is empty; check its size settings")
        # Build beside the target and rename: concurrent jobs never see a half-written cache.
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
        dsd.save_to_disk(str(tmp))
        marker = {"name": self.name, **self.fingerprint(), "specs": {m: sp.to_dict() for m, sp in self.available_modalities().items()},
                  "notes": self.preparation_notes()}  # fmt: skip
        (tmp / DONE_MARKER).write_text(json.dumps(marker, default=str, indent=1))
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
            if not self.is_prepared():
                raise

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        if not self.is_prepared():
            self.prepare_data()
        dsd = datasets.load_from_disk(str(self.prepared_dir))
        if self.normalize:  # statistics need every float modality of the train split
            self.splits["train"] = dsd["train"].with_format("numpy")
            self.normalization_stats()
        for split in SPLITS:
            table = dsd[split]
            columns = [c for c in table.column_names if c in self.selected or c == self.target]
            columns += [present_column(m) for m in self.selected if present_column(m) in table.column_names]
            self.splits[split] = table.with_format("numpy", columns=columns)

    # ---- loaders -------------------------------------------------------------------------
    def collate(self) -> PaddedCollate:
        return PaddedCollate(self.modalities, self.task, self.target, self.normalization_stats())

    def normalization_stats(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per-modality (mean, std) of the float modalities, computed on the train split only
        (once per prepared dataset, cached beside it); empty unless ``normalize``."""
        if not self.normalize:
            return {}
        if self._stats is None:
            path = self.prepared_dir / "norm_stats.npz"
            if not path.exists():
                stats = train_statistics(self.splits["train"], self.available_modalities())
                tmp = path.with_name(f".{uuid.uuid4().hex[:8]}.npz")
                np.savez(tmp, **{f"{m}__{k}": v for m, (mean, std) in stats.items() for k, v in (("mean", mean), ("std", std))})
                os.replace(tmp, path)
            raw = np.load(path)
            names = {k.rsplit("__", 1)[0] for k in raw.files}
            self._stats = {m: (raw[f"{m}__mean"], raw[f"{m}__std"]) for m in names}
        return {m: v for m, v in self._stats.items() if m in self.selected}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        data = ArrowSplit(self.splits[split], self.modalities)
        return DataLoader(
            data,
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            sampler=EpochShuffle(len(data), self.loader_seed) if shuffle else None,
            collate_fn=self.collate(),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def split_labels(self, split: str) -> np.ndarray:
        self.setup()
        return np.asarray(self.splits[split][self.target])


def train_statistics(table: datasets.Dataset, specs: dict[str, ModalitySpec], chunk: int = 2048
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]]:  # fmt: skip
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
