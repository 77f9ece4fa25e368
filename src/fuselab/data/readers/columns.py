"""The columns of someone else's table (``data=hf``), one reader per column kind.

``data.columns.<modality> = {column: <name in the source>, kind: <kind>, ...settings}``. A reader
checks its settings when the datamodule is made (before anything is read), learns from the
train split what it needs (a tokenizer, the shape of the first row), reads one cell into the
array the data contract wants, and gives the modality's spec:

========== ============================================== =========================================
kind       a cell holds                                   settings
========== ============================================== =========================================
sequence   a list of equal-width float lists (steps)
vector     a list of floats
tokens     a list of token ids                            vocab_size (required)
text       a string                                       tokenizer, min_count, max_vocab, lowercase
audio      a wav path, {array, sampling_rate}, or bytes   features, sample_rate, n_fft, hop, n_mels,
                                                          n_mfcc
image      a path, bytes, a PIL image or a (C,H,W) array  size, channels, mean, std, crop, store
video      a frame folder, a .npy file or an array        size (required), channels, mean, std, crop,
                                                          store
========== ============================================== =========================================

Pictures (image and video frames, not float arrays) are kept once each, as uint8 or PNG
(``store: auto | uint8 | png``, :mod:`fuselab.data.stores`), and made float per batch.
``text`` and ``image`` also take ``encode_with`` (a frozen pretrained encoder,
:mod:`fuselab.data.readers.frozen_features`). A cell a reader cannot read raises
:class:`~fuselab.errors.ConfigError` with the reason; for text and the file kinds (``skippable``)
the datamodule may drop that row instead (``data.bad_rows=skip``).
"""

from __future__ import annotations

import abc
import logging
from pathlib import Path
from typing import Any, ClassVar

import datasets
import numpy as np

from fuselab.data.readers import audio_features as audiolib
from fuselab.data.readers import frozen_features
from fuselab.data.readers import text as textlib
from fuselab.data.readers.images import IMAGE_SETTINGS, PictureReader, check_settings, image_shape
from fuselab.data.specs import ModalitySpec
from fuselab.data.stores import StoreInfo, StoreWriter
from fuselab.errors import ConfigError

log = logging.getLogger(__name__)


class ColumnReader(abc.ABC):
    """Reads one column of the source as one modality."""

    kind: ClassVar[str]
    takes: ClassVar[tuple[str, ...]] = ()  # the settings besides column and kind
    skippable: ClassVar[bool] = False  # a row it cannot read may be dropped (data.bad_rows=skip)

    def __init__(self, name: str, settings: dict[str, Any], base: Path) -> None:
        self.name, self.settings, self.base = name, dict(settings), base
        self.column = self.settings["column"]
        extra = sorted(set(self.settings) - {"column", "kind", *self.takes})
        if extra:
            raise ConfigError(
                f"data.columns.{name}: {extra} do not apply to {self.kind}; it takes {['column', 'kind', *self.takes]}"
            )
        self.shape: tuple[int | None, ...] = ()
        if self.settings.get("encode_with"):
            self.settings["encode_with"] = frozen_features.check(name, self.kind, self.settings["encode_with"])

    def fit(self, train: datasets.Dataset, scratch: Path) -> None:
        """Learn from the train split what reading needs (called once, before any cell is read;
        ``scratch``: the preparation's folder, where pictures are stored); most kinds need nothing."""
        del train, scratch

    @abc.abstractmethod
    def read(self, value: Any) -> np.ndarray:
        """One cell as the array of the data contract; :class:`ConfigError` with the reason when it cannot be."""

    def spec(self) -> ModalitySpec:
        return ModalitySpec(self.name, self.kind, self.shape)

    def finish(self) -> StoreInfo | None:
        """After every split is read: the store of the column's pictures, when it keeps one."""
        return None


class ArrayColumn(ColumnReader):
    """Numbers as the source holds them; every row's shape must match the first train row's."""

    dtype: ClassVar[type] = np.float32

    def fit(self, train: datasets.Dataset, scratch: Path) -> None:
        first = np.asarray(train[0][self.column], dtype=self.dtype)
        self.shape = {"tokens": (None,), "sequence": (None, first.shape[-1])}.get(self.kind, first.shape)

    def read(self, value: Any) -> np.ndarray:
        arr = np.asarray(value, dtype=self.dtype)
        if self.kind == "vector":
            if arr.shape != self.shape:
                raise ConfigError(f"it has shape {arr.shape}, the first had {self.shape}")
        elif arr.ndim != len(self.shape) or len(arr) == 0:
            what = "an empty sequence" if arr.size == 0 else f"shape {arr.shape}"
            needs = f"steps of {self.shape[-1]} features" if self.kind == "sequence" else "one token or more"
            raise ConfigError(
                f"it holds {what}; a {self.kind} column needs {needs} in every row. Fix or drop that row of the source"
            )
        return arr


class SequenceColumn(ArrayColumn):
    """Steps of equal width (a list of float lists)."""

    kind = "sequence"


class VectorColumn(ArrayColumn):
    """One list of floats per row."""

    kind = "vector"


class TokensColumn(ArrayColumn):
    """Token ids below ``vocab_size``."""

    kind = "tokens"
    takes = ("vocab_size",)
    dtype = np.int64

    def __init__(self, name: str, settings: dict[str, Any], base: Path) -> None:
        super().__init__(name, settings, base)
        if not self.settings.get("vocab_size"):
            raise ConfigError(f"data.columns.{name}: tokens need vocab_size")

    def spec(self) -> ModalitySpec:
        return ModalitySpec(self.name, "tokens", self.shape, vocab_size=int(self.settings["vocab_size"]))


class TextColumn(ColumnReader):
    """Strings, made token ids by a tokenizer: loaded (``tokenizer``: a tokenizer.json, or the
    tokenizer of the ``encode_with`` model) or fitted on the train split's strings only."""

    kind = "text"
    takes = ("tokenizer", "min_count", "max_vocab", "lowercase", "encode_with")
    skippable = True

    def __init__(self, name: str, settings: dict[str, Any], base: Path) -> None:
        super().__init__(name, settings, base)
        if self.settings.get("encode_with"):  # tokenized by the model's own tokenizer
            self.settings.setdefault("tokenizer", self.settings["encode_with"]["pretrained"])
        self.shape = (None,)

    def fit(self, train: datasets.Dataset, scratch: Path) -> None:
        s = self.settings
        if s.get("tokenizer"):
            self.tokenizer = textlib.load_tokenizer(s["tokenizer"])
        else:
            self.tokenizer = textlib.fit_word_tokenizer(
                textlib.batches(train[self.column]),
                min_count=int(s.get("min_count", 1)),
                lowercase=bool(s.get("lowercase", True)),
                max_vocab=s.get("max_vocab"),
            )
        log.info("data.columns.%s: %d tokens in the vocabulary", self.name, self.tokenizer.get_vocab_size())

    def read(self, value: Any) -> np.ndarray:
        reason = textlib.bad_text(value, self.tokenizer)
        if reason is not None:
            raise ConfigError(f"column {self.column!r} {reason}: {value!r}")
        return textlib.encode(self.tokenizer, value)

    def spec(self) -> ModalitySpec:
        words = textlib.vocabulary(self.tokenizer)
        return ModalitySpec(self.name, "tokens", (None,), vocab_size=len(words), vocabulary=tuple(words))


class AudioColumn(ColumnReader):
    """Recordings made log-mel or MFCC frames (:mod:`fuselab.data.readers.audio_features`)."""

    kind = "audio"
    takes = audiolib.AUDIO_SETTINGS
    skippable = True

    def __init__(self, name: str, settings: dict[str, Any], base: Path) -> None:
        super().__init__(name, settings, base)
        self.shape = (None, audiolib.feature_dim(self.settings))
        self.rates: dict[str, int] = {}  # without sample_rate: the first recording's rate

    def read(self, value: Any) -> np.ndarray:
        return audiolib.features_of(value, self.base, self.settings, self.rates)

    def spec(self) -> ModalitySpec:
        return ModalitySpec(self.name, "sequence", self.shape)


class PictureColumn(ColumnReader):
    """Pictures kept once in a store (:mod:`fuselab.data.stores`): a row holds numbers into it."""

    takes = IMAGE_SETTINGS
    skippable = True

    def __init__(self, name: str, settings: dict[str, Any], base: Path) -> None:
        super().__init__(name, settings, base)
        check_settings(name, self.settings)
        self.pictures = PictureReader(base, self.settings)
        self.store: StoreWriter | None = None

    def open_store(self, scratch: Path, frame: tuple[int, ...], frames: bool) -> None:
        s = self.settings
        self.store = StoreWriter(
            scratch, self.name, frame, s.get("store", "auto"), s.get("mean"), s.get("std"), frames=frames
        )

    def number(self, pending: tuple[str, Any], frame: tuple[int, ...]) -> int:
        """The stored number of a picture, refused when its shape is not ``frame``."""
        key, make = pending

        def checked() -> tuple[np.ndarray, int]:
            arr, size = make()
            if tuple(arr.shape) != tuple(frame):
                raise ConfigError(f"it has shape {tuple(arr.shape)}, the first had {tuple(frame)}")
            return arr, size

        assert self.store is not None, "fit() opens the store"
        return self.store.add(key, checked)

    def finish(self) -> StoreInfo | None:
        return self.store.finish() if self.store is not None else None


class ImageColumn(PictureColumn):
    """Images from files, bytes or PIL images (resized to ``size``), stored once each; or (C, H, W)
    float arrays, kept per row as given."""

    kind = "image"
    takes = (*IMAGE_SETTINGS, "encode_with")

    def fit(self, train: datasets.Dataset, scratch: Path) -> None:
        first = train[0][self.column]
        if isinstance(first, (list, np.ndarray)):  # arrays as given, per row
            self.shape = np.asarray(first, dtype=np.float32).shape
            return
        self.shape = image_shape(self.settings) or tuple(self.pictures.pending(first)[1]()[0].shape)
        self.open_store(scratch, self.shape, frames=False)

    def read(self, value: Any) -> np.ndarray:
        array = isinstance(value, (list, np.ndarray))
        if self.store is None:
            if not array:
                raise ConfigError("it is not a (C, H, W) array, as the column's first train row is")
            arr = np.asarray(value, dtype=np.float32)
            if arr.shape != self.shape:
                raise ConfigError(f"it has shape {arr.shape}, the first had {self.shape}")
            return arr
        if array:
            raise ConfigError("it holds an array; the column's first train row is a picture (a path, bytes or image)")
        return np.int64(self.number(self.pictures.pending(value), self.shape))


class VideoColumn(PictureColumn):
    """Clips as frames resized to ``size``; each distinct frame stored once, a row its frames'
    numbers (batched as (T, C*H*W))."""

    kind = "video"

    def __init__(self, name: str, settings: dict[str, Any], base: Path) -> None:
        if settings.get("encode_with"):
            raise ConfigError(f"data.columns.{name}.encode_with: video columns are encoded by the model")
        super().__init__(name, settings, base)
        frame = image_shape(self.settings)
        if frame is None:
            raise ConfigError(f"data.columns.{name}: a video column needs size (every frame is resized to it)")
        self.frame = frame
        self.shape = (None, *frame)

    def fit(self, train: datasets.Dataset, scratch: Path) -> None:
        self.open_store(scratch, self.frame, frames=True)

    def read(self, value: Any) -> np.ndarray:
        return np.asarray([self.number(p, self.frame) for p in self.pictures.clip(value)], dtype=np.int64)


READERS: dict[str, type[ColumnReader]] = {
    "sequence": SequenceColumn,
    "vector": VectorColumn,
    "tokens": TokensColumn,
    "text": TextColumn,
    "audio": AudioColumn,
    "image": ImageColumn,
    "video": VideoColumn,
}
COLUMN_KINDS = tuple(READERS)


def column_reader(name: str, settings: dict[str, Any], base: Path) -> ColumnReader:
    """The reader of ``data.columns.<name>``; a clear error for a missing column or unknown kind."""
    kind = settings.get("kind")
    if "column" not in settings or kind not in COLUMN_KINDS:
        raise ConfigError(
            f"data.columns.{name} needs 'column' and 'kind' (one of {list(COLUMN_KINDS)}), got {dict(settings)}"
        )
    return READERS[kind](name, settings, base)
