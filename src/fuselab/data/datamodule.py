"""``PairedDataModule``: the base of every fuselab datamodule.

A subclass says which modality names it has (cheap, no I/O), what determines its data
(``fingerprint``) and how to build it (``build(scratch)``, heavy, run once per fingerprint).
``build`` returns the splits together with the specs, the target and the alignment. Everything a
model is built from then comes from one call, :meth:`PairedDataModule.describe`, which prepares
the data first if the cache does not hold it yet. ``setup`` memory-maps the splits; the loaders
serve padded batches of the selected modalities.

The base's jobs are parts of their own: which modalities a run uses
(:mod:`~fuselab.data.selection`), the cache entry of a fingerprint with its key, lock, scratch
folder and atomic save (:mod:`~fuselab.data.cache`), the train-only normalisation statistics
(:mod:`~fuselab.data.normalization`), and here the loaders (sampler, reader, collation).
"""

from __future__ import annotations

import abc
import inspect
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader, Sampler

from fuselab.config.rules import check_setting
from fuselab.data.arrow import ArrowSplit
from fuselab.data.cache import DONE_MARKER, SPLITS, CacheEntry, PreparedData, default_cache_dir
from fuselab.data.collate import REFERENCES_COLUMN, PaddedCollate, move_batch, present_column
from fuselab.data.normalization import stored_statistics
from fuselab.data.samplers import EpochBalancedSampler, EpochShuffle, ResumableLoader
from fuselab.data.selection import select_modalities
from fuselab.data.specs import DataDescription, ModalitySpec
from fuselab.data.stores import ImageStore, open_stores
from fuselab.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["DONE_MARKER", "PairedDataModule", "PreparedData", "default_cache_dir"]


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
        self.selected = select_modalities(self.name, self.modality_names(), modalities)
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
        self.stores: dict[str, ImageStore] = {}  # the picture stores of the selected image/video modalities
        self._stats: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
        self._description: DataDescription | None = None

    # ---- what a subclass provides -------------------------------------------------------
    @abc.abstractmethod
    def modality_names(self) -> list[str]:
        """Every modality the dataset has (cheap: no I/O; checks ``data.modalities``)."""

    @abc.abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """Everything that determines the prepared data (not batch size, not modalities)."""

    @abc.abstractmethod
    def build(self, scratch: Path) -> PreparedData:
        """Create the train/val/test splits and describe them. Called once per fingerprint;
        ``scratch`` is a folder of this preparation's own for anything spilled on the way
        (:func:`fuselab.data.chunks.rows_to_dataset`), removed afterwards."""

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

    # ---- preparation, cached (fuselab.data.cache) ---------------------------------------------
    def cache_entry(self) -> CacheEntry:
        """This dataset's entry in the cache (computing its key may stat or hash the source files)."""
        return CacheEntry(self.cache_dir, self.name, self.fingerprint())

    def prepared_dir(self) -> Path:
        """The cache folder of this dataset's fingerprint."""
        return self.cache_entry().path

    def prepared_marker(self) -> dict[str, Any]:
        """The marker written beside the prepared splits: fingerprint, description, notes."""
        return self.cache_entry().marker()

    def is_prepared(self) -> bool:
        return self.cache_entry().is_prepared()

    def prepare_data(self) -> None:
        """Build and cache the dataset unless the cache holds it. Two processes preparing the
        same dataset at once take turns: the second waits, then reuses what the first wrote."""
        self.cache_entry().prepare(self._build, self.target_column)

    def _build(self, scratch: Path) -> PreparedData:
        if not inspect.signature(self.build).parameters:  # a datamodule written for fuselab <= 0.2
            return self.build()  # type: ignore[call-arg]
        return self.build(scratch)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self.describe()
        dsd = datasets.load_from_disk(str(self.prepared_dir()))
        self.stores = open_stores(self.prepared_dir(), self.prepared_marker(), self.selected)
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
            every = DataDescription.from_dict(self.prepared_marker()["description"]).modalities
            stores = open_stores(self.prepared_dir(), self.prepared_marker(), every)
            self._stats = stored_statistics(self.prepared_dir(), self.splits["train"], every, stores)
        return {m: v for m, v in self._stats.items() if m in self.selected}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        data = ArrowSplit(self.splits[split], self.row_specs(), self.stores)
        settings = dict(
            collate_fn=self.collate(),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )
        if shuffle:  # training: resumable mid-epoch (a run stopped by SIGTERM continues where it was)
            sampler = self._train_sampler(len(data))
            return ResumableLoader(
                data, batch_size=self.batch_size, sampler=sampler, batches_done=self._batches_done, **settings
            )
        return DataLoader(data, batch_size=self.eval_batch_size, **settings)

    def _batches_done(self) -> int:
        """The batches of the current epoch trained so far (Lightning's count; 0 outside fit)."""
        trainer = getattr(self, "trainer", None)
        loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
        return int(loop.batch_progress.current.completed) if loop is not None else 0

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

    def rows(self, split: str, indices: Sequence[int]) -> dict[str, Any]:
        """The rows ``indices`` of a split as the loader reads them, before collation (stored
        pictures made float): ``{column: values}``."""
        self.setup()
        return ArrowSplit(self.splits[split], self.row_specs(), self.stores).__getitems__(list(indices))

    def split_labels(self, split: str) -> np.ndarray:
        """The target column of a split, as stored."""
        self.setup()
        return np.asarray(self.splits[split][self.target_column])
