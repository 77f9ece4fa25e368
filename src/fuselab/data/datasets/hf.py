"""Any Hugging Face dataset, a ``save_to_disk`` folder, or local parquet/arrow files, with its
columns mapped to modalities::

    data=hf data.source=/data/my_set data.target_column=label data.target_kind=multiclass data.num_outputs=5 \\
      'data.columns={speech: {column: mfcc, kind: sequence}, caption: {column: ids, kind: tokens, vocab_size: 30522}}'

Each column is read by the reader of its ``kind`` (:mod:`fuselab.data.readers.columns`: the
kinds, what a cell may hold, the settings each takes); the target by
:class:`~fuselab.data.labels.Labels` (class ids, ``ClassLabel`` or strings). A cell that cannot be
read (a text that is empty or has no token, a file that is missing or broken) is refused with its
split, row and column, or dropped and counted with ``data.bad_rows=skip``; a validation or test
class that train never shows likewise, or dropped and counted with ``data.unseen_labels=drop``. Splits named
``train``, ``validation``/``val`` and ``test`` are used; a missing validation split is carved
from train (``val_fraction``, seeded). Nothing is downloaded when HF_DATASETS_OFFLINE=1.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow.parquet as pq

from fuselab.data.datamodule import PairedDataModule, PreparedData
from fuselab.data.labels import UNSEEN, Labels, UnseenLabel
from fuselab.data.readers import frozen_features
from fuselab.data.readers.columns import ColumnReader, column_reader
from fuselab.data.sources import content_stamp
from fuselab.data.specs import TARGET_KINDS, TargetSpec
from fuselab.data.stores import ImageStore, StoreInfo
from fuselab.errors import ConfigError

VAL_NAMES = ("validation", "val", "valid", "dev")
log = logging.getLogger(__name__)


def _load(source: str, name: str | None, scratch: Path | None = None) -> datasets.DatasetDict:
    """The dataset at ``source``. Local parquet/arrow files are read into ``scratch`` (this
    preparation's own folder), never into the datasets library's shared cache, which keys local
    files by path and time and would hand back the old rows of a file rewritten in place."""
    p = Path(source).expanduser()
    try:
        if p.is_dir() and (p / "dataset_dict.json").exists():
            return datasets.load_from_disk(str(p))
        if p.is_dir() or p.suffix in (".parquet", ".arrow"):
            files = sorted(p.glob("*.parquet")) if p.is_dir() else [p]
            fmt = "parquet"
            if p.is_dir() and not files:
                files, fmt = sorted(p.glob("*.arrow")), "arrow"
            if not files:
                raise ConfigError(f"data.source={p}: no dataset_dict.json, parquet or arrow files in it")
            by_split: dict[str, list[str]] = {}
            for f in files:
                split = next((s for s in ("train", *VAL_NAMES, "test") if f.stem.startswith(s)), "train")
                by_split.setdefault(split, []).append(str(f))
            for split, paths in by_split.items():
                if fmt == "parquet" and all(pq.ParquetFile(f).metadata.num_rows == 0 for f in paths):
                    raise ConfigError(
                        f"data.source={p}: the {split} split is empty ({', '.join(Path(f).name for f in paths)} "
                        f"{'holds' if len(paths) == 1 else 'hold'} no row); write its rows, or remove the file"
                    )
            return datasets.load_dataset(fmt, data_files=by_split, cache_dir=str(scratch) if scratch else None)
        return datasets.load_dataset(source, name)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - the hub, the network or a bad file: the user's to fix
        raise ConfigError(
            f"data.source={source}: cannot load it ({exc}). Give a local folder or a dataset available offline"
        ) from exc


SOURCE_ROW = "_fuselab_source_row"  # a row's index in the source's train split, when validation is carved from it


def _where(row: dict[str, Any], i: int, split: str) -> str:
    """Which row of the source a message names (a carved split's row i is another source row)."""
    if SOURCE_ROW in row:
        return f"row {row[SOURCE_ROW]} of the source's train split (fuselab's {split} split row {i})"
    return f"row {i} of the {split} split"


class HFDataModule(PairedDataModule):
    name = "hf"

    def __init__(
        self,
        source: str,
        columns: dict[str, dict[str, Any]],
        target_column: str = "label",
        target_kind: str = "multiclass",
        num_outputs: int | None = None,
        config_name: str | None = None,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        bad_rows: str = "refuse",
        unseen_labels: str = "refuse",
        **loader_kwargs: Any,
    ) -> None:
        if not source:
            raise ConfigError("data.source is not set: a dataset name, a save_to_disk folder or parquet files")
        if not columns:
            raise ConfigError("data.columns is empty: map each modality to {column: ..., kind: ...}")
        base = Path(source).expanduser()
        self.base = base if base.is_dir() else base.parent  # where relative file paths start
        # one reader per column, its settings checked now, before anything is read
        self.readers: dict[str, ColumnReader] = {m: column_reader(m, dict(c), self.base) for m, c in columns.items()}
        if target_kind not in TARGET_KINDS:
            raise ConfigError(f"data.target_kind={target_kind!r} is not one of {list(TARGET_KINDS)}")
        if num_outputs is not None and int(num_outputs) < 1:
            raise ConfigError(f"data.num_outputs={num_outputs} must be >= 1 (or null: inferred from the target column)")
        self.source, self.config_name = str(source), config_name
        self.columns = {m: r.settings for m, r in self.readers.items()}
        self.source_target_column, self.target_kind, self.num_outputs = target_column, target_kind, num_outputs
        if not 0.0 < float(val_fraction) < 1.0:
            raise ConfigError(
                f"data.val_fraction={val_fraction}: the share of train held out for validation (when the source has "
                "no validation split) must lie strictly between 0 and 1, e.g. 0.1"
            )
        self.val_fraction, self.split_seed = float(val_fraction), int(split_seed)
        if bad_rows not in ("refuse", "skip"):
            raise ConfigError(f"data.bad_rows={bad_rows!r} is not refuse or skip")
        self.bad_rows = bad_rows
        if unseen_labels not in UNSEEN:
            raise ConfigError(f"data.unseen_labels={unseen_labels!r} is not one of {list(UNSEEN)}")
        self.unseen_labels = unseen_labels
        super().__init__(**loader_kwargs)

    def modality_names(self) -> list[str]:
        return list(self.columns)

    def fingerprint(self) -> dict[str, Any]:
        p = Path(self.source).expanduser()
        stamp = content_stamp(p, self.cache_dir) if p.exists() else [self.source, self.config_name]
        return {
            "version": 5,  # 3: class names of string and ClassLabel targets; 4: pictures stored once; 5: lists of names
            "source": stamp,
            "num_outputs": self.num_outputs,
            "columns": self.columns,
            "target_column": self.source_target_column,
            "target_kind": self.target_kind,
            "val_fraction": self.val_fraction,
            "split_seed": self.split_seed,
            "bad_rows": self.bad_rows,
            "unseen_labels": self.unseen_labels,
            "tokenizers": {
                m: content_stamp(c["tokenizer"], self.cache_dir) for m, c in self.columns.items() if c.get("tokenizer")
            },
            "encoders": {
                m: content_stamp(next(iter(c["encode_with"].values())), self.cache_dir)
                for m, c in self.columns.items()
                if c.get("encode_with")
            },
        }

    def _splits(self, raw: datasets.DatasetDict) -> dict[str, datasets.Dataset]:
        """train, val (the source's, or carved from train) and test, each holding every column read."""
        if "train" not in raw:
            raise ConfigError(f"data.source={self.source} has splits {list(raw)}; a 'train' split is needed")
        if "test" not in raw:
            raise ConfigError(f"data.source={self.source} has no 'test' split (splits: {list(raw)})")
        val = next((s for s in VAL_NAMES if s in raw), None)
        train = raw["train"]
        if val is None:  # each carved row keeps its source row, for the messages that name one
            train = train.add_column(SOURCE_ROW, np.arange(len(train)))
            parts = train.train_test_split(test_size=self.val_fraction, seed=self.split_seed)
            train, val_ds = parts["train"], parts["test"]
        else:
            val_ds = raw[val]
        needed = [r.column for r in self.readers.values()] + [self.source_target_column]
        missing = [c for c in needed if c not in train.column_names]
        if missing:
            raise ConfigError(f"data.source={self.source}: no column(s) {missing}; columns: {train.column_names}")
        return {"train": train, "val": val_ds, "test": raw["test"]}

    def _read_split(
        self, split: str, ds: datasets.Dataset, labels: Labels, scratch: Path
    ) -> tuple[Any, dict[str, int]]:
        """Every row of ``ds`` read by the column readers, with its label. A row a skippable reader
        cannot read is refused, naming split, row, column and reason, or (``data.bad_rows=skip``)
        left out and counted; so is a row whose class train never shows (``data.unseen_labels``).
        The counts are returned with the split."""
        skipped: list[str] = []
        unseen: list[str] = []

        def read_rows(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
            out: dict[str, list[Any]] = {m: [] for m in self.readers} | {"label": []}
            for j, i in enumerate(indices):
                row = {k: v[j] for k, v in batch.items()}
                values = {}
                for m, reader in self.readers.items():
                    try:
                        values[m] = reader.read(row[reader.column])
                    except ConfigError as exc:
                        if self.bad_rows == "skip" and reader.skippable:
                            skipped.append(f"data.columns.{m}: {_where(row, i, split)}: {exc}")
                            break
                        fix = ". Fix it, or set data.bad_rows=skip to drop such rows (they are counted)"
                        raise ConfigError(
                            f"data.columns.{m}: {_where(row, i, split)}: {exc}{fix if reader.skippable else ''}"
                        ) from exc
                else:
                    where = f"data.target_column={self.source_target_column}: {_where(row, i, split)}"
                    try:
                        label = labels(row[self.source_target_column], where, split)
                    except UnseenLabel as exc:
                        if self.unseen_labels == "drop":
                            unseen.append(str(exc))
                            continue
                        raise
                    out["label"].append(label)
                    for m, v in values.items():
                        out[m].append(v)
            return out

        read = ds.map(
            read_rows,
            batched=True,
            batch_size=100,
            with_indices=True,
            remove_columns=ds.column_names,
            cache_file_name=str(scratch / f"{split}-read.arrow"),
            load_from_cache_file=False,
            new_fingerprint=uuid.uuid4().hex,  # the readers write picture stores: never hashed, never reused
            desc=f"fuselab: {split}",
        )
        if skipped:
            log.warning(
                "data: %d rows of the %s split dropped (data.bad_rows=skip), first: %s", len(skipped), split, skipped[0]
            )
        if unseen:
            log.warning(
                "data: %d rows of the %s split dropped: their class never occurs in train (data.unseen_labels=drop); "
                "first: %s",
                len(unseen),
                split,
                unseen[0].split(". Move such rows")[0],
            )
        if len(read) == 0:
            raise ConfigError(f"data.source={self.source}: the {split} split has no usable row")
        return read, {"bad_rows": len(skipped), "unseen_labels": len(unseen)}

    def build(self, scratch: Path) -> PreparedData:
        splits = self._splits(_load(self.source, self.config_name, scratch))
        for reader in self.readers.values():
            reader.fit(splits["train"], scratch)
        labels = Labels(
            splits["train"], self.source_target_column, self.target_kind, self.num_outputs, self.unseen_labels
        )
        out, dropped = {}, {}
        for split, ds in splits.items():
            out[split], dropped[split] = self._read_split(split, ds, labels, scratch)
        specs = {m: r.spec() for m, r in self.readers.items()}
        stores = {m: info for m, r in self.readers.items() if (info := r.finish()) is not None}
        for info in stores.values():
            log_store(info, scratch)
        for m, c in self.columns.items():
            if c.get("encode_with"):
                store = ImageStore(scratch, stores.pop(m)) if m in stores else None
                out, specs[m] = frozen_features.encode_column(out, m, c["kind"], c["encode_with"], specs[m], store)
        notes = {}
        for key, why in (("skipped_rows", "bad_rows"), ("unseen_label_rows", "unseen_labels")):
            counts = {split: n[why] for split, n in dropped.items()}
            if any(counts.values()):
                notes[key] = counts
        return PreparedData(
            datasets.DatasetDict(out),
            specs,
            TargetSpec(self.target_kind, labels.num_outputs, class_names=labels.names),
            notes=notes,
            stores=stores,
            store_folder=scratch,
        )


def log_store(info: StoreInfo, folder: Path) -> None:
    """What storing the pictures once saved: rows, distinct pictures, bytes per row."""
    stored = info.stored_bytes(folder)
    rows = max(info.references, 1)
    floats = 4 * int(np.prod(info.shape))
    log.info(
        "data.columns.%s: %d %s point at %d distinct pictures, stored as %s: %s (%.0f bytes a %s; "
        "a float32 copy per %s would be %d bytes); the source pictures hold %s",
        info.modality,
        info.references,
        "frames" if info.frames else "rows",
        info.count,
        info.format,
        _size(stored),
        stored / rows,
        "frame" if info.frames else "row",
        "frame" if info.frames else "row",
        floats,
        _size(info.source_bytes),
    )


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
