"""Any Hugging Face dataset, a ``save_to_disk`` folder, or local parquet/arrow files, with its
columns mapped to modalities::

    data=hf data.source=/data/my_set data.target=label data.task=multiclass data.num_outputs=5 \\
      'data.columns={speech: {column: mfcc, kind: sequence}, caption: {column: ids, kind: tokens, vocab_size: 30522}}'

``kind``: sequence (list of float lists), tokens (list of ints; ``vocab_size``), image (C,H,W
array or a PIL image, scaled to [0, 1]), vector (list of floats). Splits named ``train``,
``validation``/``val`` and ``test`` are used; a missing validation split is carved from train
(``val_fraction``, seeded). Nothing is downloaded when HF_DATASETS_OFFLINE=1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import numpy as np

from fuselab.data.datamodule import PairedDataModule
from fuselab.data.specs import MODALITY_KINDS, TASK_KINDS, ModalitySpec, TaskSpec
from fuselab.errors import ConfigError

VAL_NAMES = ("validation", "val", "valid", "dev")


def _load(source: str, name: str | None) -> datasets.DatasetDict:
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
            return datasets.load_dataset(fmt, data_files=by_split)
        return datasets.load_dataset(source, name)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - the hub, the network or a bad file: the user's to fix
        raise ConfigError(f"data.source={source}: cannot load it ({exc}). Give a local folder or a dataset "
                          "available offline") from exc  # fmt: skip


def _convert(value: Any, kind: str) -> np.ndarray:
    if kind == "tokens":
        return np.asarray(value, dtype=np.int64)
    if kind == "image" and hasattr(value, "convert"):  # PIL image -> (C, H, W) in [0, 1]
        arr = np.asarray(value.convert("RGB"), dtype=np.float32) / 255.0
        return arr.transpose(2, 0, 1)
    return np.asarray(value, dtype=np.float32)


class HFDataModule(PairedDataModule):
    name = "hf"

    def __init__(self, source: str, columns: dict[str, dict[str, Any]], target: str = "label", task: str = "multiclass",
                 num_outputs: int | None = None, config_name: str | None = None, val_fraction: float = 0.1,
                 split_seed: int = 0, **loader_kwargs: Any) -> None:  # fmt: skip
        if not source:
            raise ConfigError("data.source is not set: a dataset name, a save_to_disk folder or parquet files")
        if not columns:
            raise ConfigError("data.columns is empty: map each modality to {column: ..., kind: ...}")
        for m, c in columns.items():
            if "column" not in c or c.get("kind") not in MODALITY_KINDS:
                raise ConfigError(f"data.columns.{m} needs 'column' and 'kind' (one of {list(MODALITY_KINDS)}), got {dict(c)}")
            if c["kind"] == "tokens" and not c.get("vocab_size"):
                raise ConfigError(f"data.columns.{m}: tokens need vocab_size")
        if task not in TASK_KINDS:
            raise ConfigError(f"data.task={task!r} is not one of {list(TASK_KINDS)}")
        self.source, self.config_name = str(source), config_name
        self.columns = {m: dict(c) for m, c in columns.items()}
        self.target_column, self.task_kind, self.num_outputs = target, task, num_outputs
        self.val_fraction, self.split_seed = float(val_fraction), int(split_seed)
        self._shapes: dict[str, tuple[int | None, ...]] | None = None
        self._num_outputs: int | None = num_outputs
        super().__init__(**loader_kwargs)

    def modality_names(self) -> list[str]:
        return list(self.columns)

    def _marker_specs(self) -> None:
        if self._shapes is None:
            if not self.is_prepared():
                self.prepare_data()
            marker = self.prepared_marker()
            if self._shapes is None:
                self._shapes = {m: tuple(s["shape"]) for m, s in marker["specs"].items()}
                self._num_outputs = marker["notes"]["num_outputs"]

    def available_modalities(self) -> dict[str, ModalitySpec]:
        self._marker_specs()
        assert self._shapes is not None
        return {m: ModalitySpec(m, c["kind"], self._shapes[m], vocab_size=c.get("vocab_size"))
                for m, c in self.columns.items()}  # fmt: skip

    def task_spec(self) -> TaskSpec:
        self._marker_specs()
        return TaskSpec(self.task_kind, int(self._num_outputs or 1))

    def fingerprint(self) -> dict[str, Any]:
        p = Path(self.source).expanduser()
        stamp = [str(p.resolve()), int(p.stat().st_mtime)] if p.exists() else [self.source, self.config_name]
        return {"version": 1, "source": stamp, "columns": self.columns, "target": self.target_column,
                "task": self.task_kind, "val_fraction": self.val_fraction, "split_seed": self.split_seed}  # fmt: skip

    def preparation_notes(self) -> dict[str, Any]:
        return {"num_outputs": self._num_outputs}

    def build(self) -> datasets.DatasetDict:
        raw = _load(self.source, self.config_name)
        if "train" not in raw:
            raise ConfigError(f"data.source={self.source} has splits {list(raw)}; a 'train' split is needed")
        val = next((s for s in VAL_NAMES if s in raw), None)
        train = raw["train"]
        if val is None:
            parts = train.train_test_split(test_size=self.val_fraction, seed=self.split_seed)
            train, val_ds = parts["train"], parts["test"]
        else:
            val_ds = raw[val]
        if "test" not in raw:
            raise ConfigError(f"data.source={self.source} has no 'test' split (splits: {list(raw)})")
        needed = [c["column"] for c in self.columns.values()] + [self.target_column]
        missing = [c for c in needed if c not in train.column_names]
        if missing:
            raise ConfigError(f"data.source={self.source}: no column(s) {missing}; columns: {train.column_names}")
        first = train[0]
        self._shapes = {}
        for m, c in self.columns.items():
            arr = _convert(first[c["column"]], c["kind"])
            self._shapes[m] = (None,) if c["kind"] == "tokens" else ((None, arr.shape[-1]) if c["kind"] == "sequence" else arr.shape)
        if self._num_outputs is None:
            y = np.asarray(train[self.target_column])
            self._num_outputs = int(y.max()) + 1 if self.task_kind == "multiclass" else int(y.reshape(len(y), -1).shape[1])
        out = {}
        for split, ds in (("train", train), ("val", val_ds), ("test", raw["test"])):
            out[split] = ds.map(self._row, remove_columns=ds.column_names, desc=f"fuselab: {split}")
        return datasets.DatasetDict(out)

    def _row(self, row: dict[str, Any]) -> dict[str, Any]:
        converted = {m: _convert(row[c["column"]], c["kind"]) for m, c in self.columns.items()}
        for m, arr in converted.items():
            if self.columns[m]["kind"] in ("image", "vector") and self._shapes and arr.shape != self._shapes[m]:
                raise ConfigError(f"data.columns.{m}: a sample has shape {arr.shape}, the first had {self._shapes[m]}")
        return {**converted, "label": row[self.target_column]}
