"""The dataset cache: one folder per dataset fingerprint, written once, atomically, under a lock.

``<cache_dir>/<name>/<key>/`` holds a prepared ``DatasetDict`` and its marker
(``fuselab_prepared.json``: the fingerprint, the data description and the notes). The key is a
digest of the dataset's name, :data:`CACHE_FORMAT` and its fingerprint, so a changed setting or
source file is a new folder and nothing prepared is ever overwritten. Two processes that prepare
the same entry take turns (the second reuses what the first wrote); a preparation builds in a
scratch folder of its own and renames its result into place, so no reader sees half of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from fuselab.data.checks import check_splits
from fuselab.data.specs import DataDescription, ModalitySpec, TargetSpec
from fuselab.data.stores import STORE_DIR, StoreInfo, files
from fuselab.errors import ConfigError
from fuselab.locks import FileLock

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
DONE_MARKER = "fuselab_prepared.json"
# part of every cache key: a change of what the marker holds never reuses an older cache
CACHE_FORMAT = 3  # 3: every split checked at preparation (fuselab.data.checks)


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
    # the picture stores of image/video columns (fuselab.data.stores), written under ``store_folder``
    stores: dict[str, StoreInfo] = field(default_factory=dict)
    store_folder: Path | None = None


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


class CacheEntry:
    """The cache folder of one dataset fingerprint (``fingerprint`` is computed by the caller,
    which may stat or hash source files)."""

    def __init__(self, cache_dir: Path, name: str, fingerprint: dict[str, Any]) -> None:
        self.cache_dir, self.name, self.fingerprint = cache_dir, name, fingerprint
        blob = json.dumps({"name": name, "format": CACHE_FORMAT, **fingerprint}, sort_keys=True, default=str)
        self.path = cache_dir / name / hashlib.sha256(blob.encode()).hexdigest()[:16]

    def is_prepared(self) -> bool:
        return (self.path / DONE_MARKER).exists()

    def marker(self) -> dict[str, Any]:
        """What was written beside the prepared splits: fingerprint, description, notes."""
        return json.loads((self.path / DONE_MARKER).read_text())

    def prepare(self, build: Callable[[Path], PreparedData], target_column: str) -> None:
        """Unless the entry is prepared: ``build(scratch)`` (``scratch``: a folder of this
        preparation's own, removed afterwards), its splits checked against its description
        (``target_column``: the splits' target), then saved into place. Waits while another
        process prepares the same entry."""
        if self.is_prepared():
            return
        if self.cache_dir.exists() and not self.cache_dir.is_dir():
            raise ConfigError(
                f"the dataset cache {self.cache_dir} is a file; set paths.cache_dir=<dir> "
                "(or export FUSELAB_CACHE_DIR=<dir>)"
            )
        try:
            lock = FileLock(self.path.parent / f".{self.path.name}.lock", "the dataset cache entry", wait=True)
            lock.acquire()
        except ConfigError as exc:
            raise ConfigError(
                f"cannot write the dataset cache under {self.cache_dir}: {exc}. Set "
                "paths.cache_dir=<writable dir> (or export FUSELAB_CACHE_DIR=<dir>)"
            ) from exc
        try:
            if not self.is_prepared():  # unless another process prepared it while this one waited
                self._prepare(build, target_column)
        finally:
            lock.release()

    def _prepare(self, build: Callable[[Path], PreparedData], target_column: str) -> None:
        log.info("Preparing %s into %s (once; later runs reuse it)", self.name, self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.parent / f".scratch-{self.path.name}-{uuid.uuid4().hex[:8]}"
        scratch.mkdir()
        try:
            with quiet_datasets():
                self._save(build(scratch), target_column)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _save(self, prepared: PreparedData, target_column: str) -> None:
        dsd = prepared.splits
        missing = [s for s in SPLITS if s not in dsd]
        if missing:
            raise ValueError(f"the {self.name} dataset's build() returned no split(s) {missing}")
        for split in SPLITS:
            if len(dsd[split]) == 0:
                raise ConfigError(f"dataset '{self.name}': split '{split}' is empty; check its size settings")
        description = DataDescription(prepared.modalities, prepared.target, prepared.aligned)
        check_splits(dsd, description, target_column, self.name)
        tmp = self.path.parent / f".tmp-{self.path.name}-{uuid.uuid4().hex[:8]}"
        dsd.save_to_disk(str(tmp))
        if prepared.stores:
            assert prepared.store_folder is not None, "stores are written under store_folder"
            (tmp / STORE_DIR).mkdir()
            for m in prepared.stores:
                for name in files(m):
                    os.replace(prepared.store_folder / STORE_DIR / name, tmp / STORE_DIR / name)
        marker = {
            "name": self.name,
            **self.fingerprint,
            "description": description.to_dict(),
            "notes": prepared.notes,
            "stores": {m: info.to_dict() for m, info in prepared.stores.items()},
        }
        (tmp / DONE_MARKER).write_text(json.dumps(marker, default=str, indent=1))
        try:
            os.rename(tmp, self.path)
        except OSError:  # another process finished first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
            if not self.is_prepared():
                raise
