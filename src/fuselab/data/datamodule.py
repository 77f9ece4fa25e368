"""``PairedDataModule``: the base of every fuselab datamodule.

A subclass says which modality names it has (cheap, no I/O), what determines its data
(``fingerprint``) and how to build it (``build``, heavy, run once per fingerprint). ``build``
returns the splits together with the specs, the target and the alignment, and the base stores
them all under ``cache_dir`` as a Hugging Face ``DatasetDict`` plus a marker file. Everything a
model is built from then comes from one call, :meth:`PairedDataModule.describe`, which prepares
the data first if the cache does not hold it yet. ``setup`` memory-maps the splits; the loaders
serve padded batches of the selected modalities.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader, Sampler

from fuselab.config.rules import check_setting
from fuselab.data.arrow import ArrowSplit
from fuselab.data.checks import check_splits
from fuselab.data.chunks import rows_to_dataset
from fuselab.data.collate import REFERENCES_COLUMN, PaddedCollate, move_batch, present_column
from fuselab.data.samplers import EpochBalancedSampler, EpochShuffle
from fuselab.data.specs import DataDescription, ModalitySpec, TargetSpec
from fuselab.errors import ConfigError
from fuselab.locks import FileLock

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
DONE_MARKER = "fuselab_prepared.json"
# part of every cache key: a change of what the marker holds never reuses an older cache
CACHE_FORMAT = 3  # 3: every split checked at preparation (fuselab.data.checks)


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """No ``datasets`` progress bars while preparing: they write to stderr, where a refused input
    must be the one line that names its fix (fuselab logs the preparation itself)."""
    was_on = datasets.utils.logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_on:
            datasets.enable_progress_bars()


def default_cache_dir() -> str:
    return os.environ.get("FUSELAB_CACHE_DIR", str(Path.home() / ".cache" / "fuselab"))


@dataclass
class PreparedData:
    """What :meth:`PairedDataModule.build` returns: the three splits, the specs of EVERY modality
    the dataset has, the target, the alignment, and notes worth keeping (e.g. values cleaned)."""

    splits: datasets.DatasetDict
    modalities: dict[str, ModalitySpec]
    target: TargetSpec
    aligned: bool = False
    notes: dict[str, Any] = field(default_factory=dict)


class PairedDataModule(pl.LightningDataModule, abc.ABC):
    """Base class. Subclasses implement ``modality_names``, ``fingerprint`` and ``build``."""

    name = "paired"
    target_column = "label"

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
        balanced_sampler: bool = False,
    ) -> None:
        super().__init__()
        available = self.modality_names()
        example = f"data.modalities=[{','.join(list(available)[:2])}]"
        if isinstance(modalities, str):
            raise ConfigError(
                f"data.modalities={modalities} is one name; it takes a list, e.g. data.modalities=[{modalities}]"
            )
        if modalities is not None and len(modalities) == 0:
            raise ConfigError(
                f"data.modalities=[] selects nothing; list the modalities ({example}) or use null for all"
            )
        if modalities is None:
            selected = list(available)
        else:
            selected = [str(m) for m in modalities]
            unknown = [m for m in selected if m not in available]
            if unknown:
                raise ConfigError(
                    f"data.modalities: {unknown} not in dataset '{self.name}'. "
                    f"It has: {list(available)}. Example: {example}"
                )
            if len(set(selected)) != len(selected):
                raise ConfigError(f"data.modalities lists a modality twice: {selected}")
        self.selected = selected
        check_setting("data.batch_size", batch_size)
        check_setting("data.eval_batch_size", eval_batch_size)
        check_setting("data.num_workers", num_workers)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(batch_size if eval_batch_size is None else eval_batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.cache_dir = Path(cache_dir or default_cache_dir()).expanduser()
        self.loader_seed = int(loader_seed)
        self.normalize = bool(normalize)
        self.balanced_sampler = bool(balanced_sampler)
        self.splits: dict[str, datasets.Dataset] = {}
        self._stats: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
        self._description: DataDescription | None = None
        self._scratch: Path | None = None  # where build() may spill chunks while preparing

    # ---- what a subclass provides -------------------------------------------------------
    @abc.abstractmethod
    def modality_names(self) -> list[str]:
        """Every modality the dataset has (cheap: no I/O; checks ``data.modalities``)."""

    @abc.abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """Everything that determines the prepared data (not batch size, not modalities)."""

    @abc.abstractmethod
    def build(self) -> PreparedData:
        """Create the train/val/test splits and describe them. Called once per fingerprint."""

    # ---- the one call every model is built from ----------------------------------------
    def describe(self) -> DataDescription:
        """The selected modalities' specs, the target and the alignment, as prepared. Prepares
        the dataset first if the cache does not hold it yet (once per fingerprint)."""
        if self._description is None:
            self.prepare_data()
            stored = DataDescription.from_dict(self.prepared_marker()["description"])
            self._description = DataDescription(
                {m: stored.modalities[m] for m in self.selected}, stored.target, stored.aligned
            )
        return self._description

    # ---- preparation, cached ------------------------------------------------------------
    def prepared_dir(self) -> Path:
        """The cache folder of this dataset's fingerprint (computing it may stat the source files)."""
        blob = json.dumps(
            {"name": self.name, "format": CACHE_FORMAT, **self.fingerprint()}, sort_keys=True, default=str
        )
        digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
        return self.cache_dir / self.name / digest

    def prepared_marker(self) -> dict[str, Any]:
        """The marker written beside the prepared splits: fingerprint, description, notes."""
        return json.loads((self.prepared_dir() / DONE_MARKER).read_text())

    def is_prepared(self) -> bool:
        return (self.prepared_dir() / DONE_MARKER).exists()

    def prepare_data(self) -> None:
        """Build and cache the dataset unless the cache holds it. Two processes preparing the
        same dataset at once take turns: the second waits, then reuses what the first wrote."""
        target = self.prepared_dir()
        if self.is_prepared():
            return
        if self.cache_dir.exists() and not self.cache_dir.is_dir():
            raise ConfigError(
                f"the dataset cache {self.cache_dir} is a file; set paths.cache_dir=<dir> "
                "(or export FUSELAB_CACHE_DIR=<dir>)"
            )
        try:
            lock = FileLock(target.parent / f".{target.name}.lock", "the dataset cache entry", wait=True)
            lock.acquire()
        except ConfigError as exc:
            raise ConfigError(
                f"cannot write the dataset cache under {self.cache_dir}: {exc}. Set "
                "paths.cache_dir=<writable dir> (or export FUSELAB_CACHE_DIR=<dir>)"
            ) from exc
        try:
            if not self.is_prepared():  # unless another process prepared it while this one waited
                self._prepare(target)
        finally:
            lock.release()

    def rows_to_dataset(
        self, rows: Iterator[dict[str, Any]], features: datasets.Features, chunk: int = 2000
    ) -> datasets.Dataset:
        """A split from an iterator of rows, spilled ``chunk`` rows at a time while preparing
        (see :func:`fuselab.data.chunks.rows_to_dataset`)."""
        return rows_to_dataset(rows, features, self._scratch, chunk)

    def _prepare(self, target: Path) -> None:
        log.info("Preparing %s into %s (once; later runs reuse it)", self.name, target)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._scratch = target.parent / f".scratch-{target.name}-{uuid.uuid4().hex[:8]}"
        try:
            with quiet_datasets():
                self._save_prepared(target)
        finally:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def _save_prepared(self, target: Path) -> None:
        prepared = self.build()
        dsd = prepared.splits
        missing = [s for s in SPLITS if s not in dsd]
        if missing:
            raise ValueError(f"{type(self).__name__}.build() returned no split(s) {missing}")
        for split in SPLITS:
            if len(dsd[split]) == 0:
                raise ConfigError(f"dataset '{self.name}': split '{split}' is empty; check its size settings")
        description = DataDescription(prepared.modalities, prepared.target, prepared.aligned)
        check_splits(dsd, description, self.target_column, self.name)
        # Build beside the target and rename: concurrent jobs never see a half-written cache.
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
        dsd.save_to_disk(str(tmp))
        marker = {
            "name": self.name,
            **self.fingerprint(),
            "description": description.to_dict(),
            "notes": prepared.notes,
        }
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
        self.describe()
        dsd = datasets.load_from_disk(str(self.prepared_dir()))
        if self.normalize:  # statistics need every float modality of the train split
            self.splits["train"] = dsd["train"].with_format("numpy")
            self.normalization_stats()
        for split in SPLITS:
            table = dsd[split]
            wanted = (
                (self.target_column, REFERENCES_COLUMN)
                if self.describe().target.is_generation
                else (self.target_column,)
            )
            columns = [c for c in table.column_names if c in self.selected or c in wanted]
            columns += [present_column(m) for m in self.selected if present_column(m) in table.column_names]
            self.splits[split] = table.with_format("numpy", columns=columns)

    # ---- loaders -------------------------------------------------------------------------
    def collate(self) -> PaddedCollate:
        d = self.describe()
        return PaddedCollate(d.modalities, d.target, self.target_column, self.normalization_stats())

    def normalization_stats(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per-modality (mean, std) of the float modalities, computed on the train split only
        (once per prepared dataset, cached beside it); empty unless ``normalize``."""
        if not self.normalize:
            return {}
        if self._stats is None:
            path = self.prepared_dir() / "norm_stats.npz"
            if not path.exists():
                every = DataDescription.from_dict(self.prepared_marker()["description"]).modalities
                stats = train_statistics(self.splits["train"], every)
                tmp = path.with_name(f".{uuid.uuid4().hex[:8]}.npz")
                np.savez(
                    tmp,
                    **{f"{m}__{k}": v for m, (mean, std) in stats.items() for k, v in (("mean", mean), ("std", std))},
                )
                os.replace(tmp, path)
            raw = np.load(path)
            names = {k.rsplit("__", 1)[0] for k in raw.files}
            self._stats = {m: (raw[f"{m}__mean"], raw[f"{m}__std"]) for m in names}
        return {m: v for m, v in self._stats.items() if m in self.selected}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        data = ArrowSplit(self.splits[split], self.row_specs())
        return DataLoader(
            data,
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            sampler=self._train_sampler(len(data)) if shuffle else None,
            collate_fn=self.collate(),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def row_specs(self) -> dict[str, ModalitySpec]:
        """How the columns of a split are read: the selected modalities, and a generation
        target as the variable-length token list it is."""
        d = self.describe()
        specs = dict(d.modalities)
        if d.target.is_generation:
            specs[self.target_column] = ModalitySpec(self.target_column, "tokens", (None,), d.target.num_outputs)
        return specs

    def transfer_batch_to_device(self, batch: Any, device: Any, dataloader_idx: int) -> Any:
        """Lightning's hook; the generic one walks every batch's structure, this one knows it."""
        return move_batch(batch, device)

    def _train_sampler(self, size: int) -> Sampler[int]:
        if not self.balanced_sampler:
            return EpochShuffle(size, self.loader_seed)
        if self.describe().target.kind != "multiclass":
            raise ConfigError(
                f"data.balanced_sampler=true balances classes of a multiclass target; this one is "
                f"{self.describe().target.kind}: use model.loss.class_weights=balanced instead"
            )
        return EpochBalancedSampler(self.split_labels("train"), self.loader_seed)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def split_labels(self, split: str) -> np.ndarray:
        """The target column of a split, as stored."""
        self.setup()
        return np.asarray(self.splits[split][self.target_column])


def train_statistics(
    table: datasets.Dataset, specs: dict[str, ModalitySpec], chunk: int = 2048
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
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
