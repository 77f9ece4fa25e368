"""Any Hugging Face dataset, a ``save_to_disk`` folder, or local parquet/arrow files, with its
columns mapped to modalities::

    data=hf data.source=/data/my_set data.target_column=label data.target_kind=multiclass data.num_outputs=5 \\
      'data.columns={speech: {column: mfcc, kind: sequence}, caption: {column: ids, kind: tokens, vocab_size: 30522}}'

``kind``: sequence (list of float lists), tokens (list of ints; ``vocab_size``), image (C,H,W
array or a PIL image, scaled to [0, 1]), vector (list of floats), or ``text`` (strings, turned
into tokens by a word-level tokenizer fitted on the train split only: ``min_count``,
``max_vocab``, ``lowercase``; or by ``tokenizer: <tokenizer.json>``), ``audio`` (wav paths or
arrays -> log-mel/MFCC frames), images from files (``size``, ``channels``, ``mean``, ``std``) and
``video`` (frame folders, .npy files or arrays; ``size`` required). A text that is empty, not a
string or has no token is refused with its split, row and column, or dropped and counted with
``data.bad_rows=skip``. Splits named ``train``,
``validation``/``val`` and ``test`` are used; a missing validation split is carved from train
(``val_fraction``, seeded). Nothing is downloaded when HF_DATASETS_OFFLINE=1.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow.parquet as pq

from fuselab.data.datamodule import PairedDataModule, PreparedData
from fuselab.data.labels import Labels
from fuselab.data.readers import audio_features as audiolib
from fuselab.data.readers import frozen_features
from fuselab.data.readers import text as textlib
from fuselab.data.readers.images import IMAGE_SETTINGS, image_of, image_shape, video_of
from fuselab.data.sources import content_stamp
from fuselab.data.specs import MODALITY_KINDS, TARGET_KINDS, ModalitySpec, TargetSpec
from fuselab.errors import ConfigError

COLUMN_KINDS = (*MODALITY_KINDS, "text", "audio")
TEXT_KEYS = ("column", "kind", "tokenizer", "min_count", "max_vocab", "lowercase", "encode_with")
AUDIO_KEYS = ("column", "kind", *audiolib.AUDIO_SETTINGS)
IMAGE_KEYS = ("column", "kind", *IMAGE_SETTINGS, "encode_with")
FILE_KINDS = ("audio", "image", "video")  # read from files: a bad one may be skipped (data.bad_rows=skip)

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


def _placeholder(kind: str, shape: tuple[int | None, ...]) -> np.ndarray:
    """A value of the right type and rank for a row that is dropped after conversion."""
    if kind in ("text", "tokens"):
        return np.zeros(1, dtype=np.int64)
    if kind == "video":
        return np.zeros((1, int(np.prod(shape[1:]))), dtype=np.float32)
    return np.zeros(tuple(1 if d is None else d for d in shape), dtype=np.float32)


def _convert(value: Any, kind: str) -> np.ndarray:
    if kind == "tokens":
        return np.asarray(value, dtype=np.int64)
    if kind == "image" and hasattr(value, "convert"):  # PIL image -> (C, H, W) in [0, 1]
        arr = np.asarray(value.convert("RGB"), dtype=np.float32) / 255.0
        return arr.transpose(2, 0, 1)
    return np.asarray(value, dtype=np.float32)


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
        **loader_kwargs: Any,
    ) -> None:
        if not source:
            raise ConfigError("data.source is not set: a dataset name, a save_to_disk folder or parquet files")
        if not columns:
            raise ConfigError("data.columns is empty: map each modality to {column: ..., kind: ...}")
        for m, c in columns.items():
            if "column" not in c or c.get("kind") not in COLUMN_KINDS:
                raise ConfigError(
                    f"data.columns.{m} needs 'column' and 'kind' (one of {list(COLUMN_KINDS)}), got {dict(c)}"
                )
            if c["kind"] == "text" and set(c) - set(TEXT_KEYS):
                raise ConfigError(
                    f"data.columns.{m}: {sorted(set(c) - set(TEXT_KEYS))} do not apply to text;"
                    f" it takes {list(TEXT_KEYS)}"
                )
            if c["kind"] == "audio" and set(c) - set(AUDIO_KEYS):
                raise ConfigError(
                    f"data.columns.{m}: {sorted(set(c) - set(AUDIO_KEYS))} do not apply to audio;"
                    f" it takes {list(AUDIO_KEYS)}"
                )
            if c["kind"] == "video" and image_shape(c) is None:
                raise ConfigError(f"data.columns.{m}: a video column needs size (every frame is resized to it)")
            if c["kind"] in ("image", "video") and set(c) - set(IMAGE_KEYS):
                raise ConfigError(
                    f"data.columns.{m}: {sorted(set(c) - set(IMAGE_KEYS))} do not apply to {c['kind']};"
                    f" it takes {list(IMAGE_KEYS)}"
                )
            if c["kind"] == "tokens" and not c.get("vocab_size"):
                raise ConfigError(f"data.columns.{m}: tokens need vocab_size")
        if target_kind not in TARGET_KINDS:
            raise ConfigError(f"data.target_kind={target_kind!r} is not one of {list(TARGET_KINDS)}")
        if num_outputs is not None and int(num_outputs) < 1:
            raise ConfigError(f"data.num_outputs={num_outputs} must be >= 1 (or null: inferred from the target column)")
        self.source, self.config_name = str(source), config_name
        self.columns = {m: dict(c) for m, c in columns.items()}
        for m, c in self.columns.items():
            if c.get("encode_with"):
                if c["kind"] == "video":
                    raise ConfigError(f"data.columns.{m}.encode_with: video columns are encoded by the model")
                c["encode_with"] = frozen_features.check(m, c["kind"], c["encode_with"])
                if c["kind"] == "text":  # tokenized by the model's own tokenizer
                    c.setdefault("tokenizer", c["encode_with"]["pretrained"])
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
        super().__init__(**loader_kwargs)

    def modality_names(self) -> list[str]:
        return list(self.columns)

    def fingerprint(self) -> dict[str, Any]:
        p = Path(self.source).expanduser()
        stamp = content_stamp(p, self.cache_dir) if p.exists() else [self.source, self.config_name]
        return {
            "version": 3,  # 3: class names of string and ClassLabel targets
            "source": stamp,
            "num_outputs": self.num_outputs,
            "columns": self.columns,
            "target_column": self.source_target_column,
            "target_kind": self.target_kind,
            "val_fraction": self.val_fraction,
            "split_seed": self.split_seed,
            "bad_rows": self.bad_rows,
            "tokenizers": {
                m: content_stamp(c["tokenizer"], self.cache_dir) for m, c in self.columns.items() if c.get("tokenizer")
            },
            "encoders": {
                m: content_stamp(next(iter(c["encode_with"].values())), self.cache_dir)
                for m, c in self.columns.items()
                if c.get("encode_with")
            },
        }

    def _tokenizers(self, train: datasets.Dataset) -> dict[str, Any]:
        """One tokenizer per text column: loaded, or fitted on the TRAIN split's strings only."""
        out = {}
        for m, c in self.columns.items():
            if c["kind"] != "text":
                continue
            if c.get("tokenizer"):
                out[m] = textlib.load_tokenizer(c["tokenizer"])
            else:
                out[m] = textlib.fit_word_tokenizer(
                    textlib.batches(train[c["column"]]),
                    min_count=int(c.get("min_count", 1)),
                    lowercase=bool(c.get("lowercase", True)),
                    max_vocab=c.get("max_vocab"),
                )
            log.info("data.columns.%s: %d tokens in the vocabulary", m, out[m].get_vocab_size())
        return out

    def _drop_bad_text(
        self, split: str, ds: datasets.Dataset, tokenizers: dict[str, Any]
    ) -> tuple[datasets.Dataset, int]:
        """Rows whose text cannot be a sample: refused (the first is named) or dropped and counted."""
        bad: set[int] = set()
        for m, tok in tokenizers.items():
            column = self.columns[m]["column"]
            for i, value in enumerate(ds[column]):
                reason = textlib.bad_text(value, tok)
                if reason is None:
                    continue
                if self.bad_rows == "refuse":
                    raise ConfigError(
                        f"data.source={self.source}: {_where(ds[i], i, split)}: column {column!r} "
                        f"(data.columns.{m}) {reason}: {value!r}. Fix the row, or set data.bad_rows=skip to drop "
                        "such rows (they are counted)"
                    )
                bad.add(i)
        if not bad:
            return ds, 0
        log.warning("data: %d rows of the %s split dropped (bad text; data.bad_rows=skip)", len(bad), split)
        return ds.select([i for i in range(len(ds)) if i not in bad]), len(bad)

    def build(self) -> PreparedData:
        raw = _load(self.source, self.config_name, self._scratch)
        if "train" not in raw:
            raise ConfigError(f"data.source={self.source} has splits {list(raw)}; a 'train' split is needed")
        val = next((s for s in VAL_NAMES if s in raw), None)
        train = raw["train"]
        if val is None:  # each carved row keeps its source row, for the messages that name one
            train = train.add_column(SOURCE_ROW, np.arange(len(train)))
            parts = train.train_test_split(test_size=self.val_fraction, seed=self.split_seed)
            train, val_ds = parts["train"], parts["test"]
        else:
            val_ds = raw[val]
        if "test" not in raw:
            raise ConfigError(f"data.source={self.source} has no 'test' split (splits: {list(raw)})")
        needed = [c["column"] for c in self.columns.values()] + [self.source_target_column]
        missing = [c for c in needed if c not in train.column_names]
        if missing:
            raise ConfigError(f"data.source={self.source}: no column(s) {missing}; columns: {train.column_names}")
        tokenizers = self._tokenizers(train)
        splits = {"train": train, "val": val_ds, "test": raw["test"]}
        skipped = {}
        for split in list(splits):
            splits[split], skipped[split] = self._drop_bad_text(split, splits[split], tokenizers)
            if len(splits[split]) == 0:
                raise ConfigError(f"data.source={self.source}: the {split} split has no usable row")
        train = splits["train"]
        first = train[0]
        shapes: dict[str, tuple[int | None, ...]] = {}
        for m, c in self.columns.items():
            if c["kind"] in ("text", "audio"):
                shapes[m] = (None,) if c["kind"] == "text" else (None, audiolib.feature_dim(c))
                continue
            if c["kind"] == "image" and image_shape(c) is not None:
                shapes[m] = image_shape(c)  # type: ignore[assignment]
                continue
            if c["kind"] == "video":
                shapes[m] = (None, *image_shape(c))  # type: ignore[misc]
                continue
            arr = _convert(first[c["column"]], c["kind"])
            shapes[m] = (
                (None,) if c["kind"] == "tokens" else ((None, arr.shape[-1]) if c["kind"] == "sequence" else arr.shape)
            )
        labels = Labels(train, self.source_target_column, self.target_kind, self.num_outputs)

        base = Path(self.source).expanduser()
        base = base if base.is_dir() else base.parent
        rates: dict[str, int] = {}
        has_audio = any(c["kind"] in FILE_KINDS for c in self.columns.values())

        def convert(m: str, value: Any) -> np.ndarray:
            if m in tokenizers:
                return textlib.encode(tokenizers[m], value)
            if self.columns[m]["kind"] == "audio":
                return audiolib.features_of(value, base, self.columns[m], rates)
            if self.columns[m]["kind"] == "video":
                return video_of(value, base, self.columns[m])
            if self.columns[m]["kind"] == "image" and not isinstance(value, (list, np.ndarray)):
                return image_of(value, base, self.columns[m])
            return _convert(value, self.columns[m]["kind"])

        def row(r: dict[str, Any], i: int, split: str) -> dict[str, Any]:
            converted = {}
            for m, c in self.columns.items():
                try:
                    converted[m] = convert(m, r[c["column"]])
                except ConfigError as exc:
                    if self.bad_rows == "refuse" or c["kind"] not in FILE_KINDS:
                        raise ConfigError(
                            f"data.columns.{m}: {_where(r, i, split)}: {exc}. Fix it, or set data.bad_rows=skip "
                            "to drop such rows (they are counted)"
                        ) from exc
                    return {
                        **{k: _placeholder(self.columns[k]["kind"], shapes[k]) for k in self.columns},
                        "label": labels(r[self.source_target_column], _where(r, i, split)),
                        "_bad": str(exc),
                    }
            for m, arr in converted.items():
                kind = self.columns[m]["kind"]
                if kind in ("sequence", "tokens", "text") and (arr.ndim != len(shapes[m]) or len(arr) == 0):
                    what = "an empty sequence" if arr.size == 0 else f"shape {arr.shape}"
                    needs = f"steps of {shapes[m][-1]} features" if kind == "sequence" else "one token or more"
                    raise ConfigError(
                        f"data.columns.{m}: {_where(r, i, split)} holds {what}; a {kind} column needs {needs} "
                        "in every row. Fix or drop that row of the source"
                    )
                if kind in ("image", "vector") and arr.shape != shapes[m]:
                    raise ConfigError(
                        f"data.columns.{m}: {_where(r, i, split)} has shape {arr.shape}, the first had {shapes[m]}"
                    )
            label = labels(
                r[self.source_target_column], f"data.target_column={self.source_target_column}: {_where(r, i, split)}"
            )
            return {**converted, "label": label, **({"_bad": ""} if has_audio else {})}

        out = {}
        for split, ds in splits.items():
            out[split] = ds.map(
                row,
                with_indices=True,
                fn_kwargs={"split": split},
                remove_columns=ds.column_names,
                desc=f"fuselab: {split}",
            )
            if has_audio:
                bad = [i for i, b in enumerate(out[split]["_bad"]) if b]
                if bad:
                    log.warning(
                        "data: %d rows of the %s split dropped (unreadable file; data.bad_rows=skip), first: %s",
                        len(bad),
                        split,
                        out[split][bad[0]]["_bad"],
                    )
                    keep = sorted(set(range(len(out[split]))) - set(bad))
                    out[split] = out[split].select(keep)
                    skipped[split] += len(bad)
                out[split] = out[split].remove_columns("_bad")
        specs = {}
        for m, c in self.columns.items():
            if m in tokenizers:
                words = textlib.vocabulary(tokenizers[m])
                specs[m] = ModalitySpec(m, "tokens", (None,), vocab_size=len(words), vocabulary=tuple(words))
            else:
                kind = "sequence" if c["kind"] == "audio" else c["kind"]
                specs[m] = ModalitySpec(m, kind, shapes[m], vocab_size=c.get("vocab_size"))
        for m, c in self.columns.items():
            if c.get("encode_with"):
                out, specs[m] = frozen_features.encode_column(out, m, c["kind"], c["encode_with"], specs[m])
        notes = {"skipped_rows": skipped} if any(skipped.values()) else {}
        return PreparedData(
            datasets.DatasetDict(out),
            specs,
            TargetSpec(self.target_kind, labels.num_outputs, class_names=labels.names),
            notes=notes,
        )
