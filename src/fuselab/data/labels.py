"""The target column of someone else's dataset, as datasets name their classes:

- multiclass: class ids, a ``ClassLabel`` feature (ids with names) or strings (``"cat"``,
  ``"dog"``): strings become ids in the sorted order of the names the train split holds;
- multilabel: rows of 0/1 values, or lists of names (``["drama", "comedy"]``, strings or a
  sequence of ``ClassLabel``): each row becomes a 0/1 vector over the sorted names train holds
  (a ``ClassLabel``'s own order when it has one);
- regression: numbers, as they are.

The names are kept in the data description (confusion matrices, per-class metrics, predictions
and checkpoints show them). A class of validation or test that train never shows is refused,
naming its split, row and value, or, with ``data.unseen_labels=drop``, its row is dropped and
counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np

from fuselab.errors import ConfigError

STRING_TYPES = ("string", "large_string")
UNSEEN = ("refuse", "drop")


class UnseenLabel(ConfigError):
    """A validation or test row whose class train never shows."""


def _names_feature(feature: Any) -> tuple[str, Any] | None:
    """('strings' | 'classlabel', inner feature) when ``feature`` is a list of class names."""
    inner = getattr(feature, "feature", None)
    if isinstance(feature, list) and feature:
        inner = feature[0]
    if inner is None:
        return None
    if isinstance(inner, datasets.ClassLabel):
        return "classlabel", inner
    if isinstance(inner, datasets.Value) and inner.dtype in STRING_TYPES:
        return "strings", inner
    return None


class Labels:
    """How one dataset's target values become what a model is trained on."""

    def __init__(
        self,
        train: datasets.Dataset,
        column: str,
        kind: str,
        num_outputs: int | None,
        unseen: str = "refuse",
    ) -> None:
        if unseen not in UNSEEN:
            raise ConfigError(f"data.unseen_labels={unseen!r} is not one of {list(UNSEEN)}")
        self.column, self.kind, self.unseen = column, kind, unseen
        feature = train.features[column]
        self.ids: dict[str, int] | None = None  # name -> id, when cells hold names
        self.names: tuple[str, ...] = ()
        self.seen: set[int] | None = None  # the class ids train shows (multiclass ids)
        self.multi_names = False  # multilabel cells are lists of names (or ClassLabel ids)
        listed = _names_feature(feature)
        if kind == "multilabel" and listed is not None:
            self.multi_names = True
            how, inner = listed
            if how == "classlabel":
                self.names = tuple(inner.names)
            else:
                self.names = tuple(sorted({name for row in train[column] for name in (row or ())}))
                self.ids = {name: i for i, name in enumerate(self.names)}
            self.seen = set(range(len(self.names))) if how == "classlabel" else None
        elif isinstance(feature, datasets.ClassLabel):
            self.names = tuple(feature.names)
        elif isinstance(feature, datasets.Value) and feature.dtype in STRING_TYPES:
            if kind != "multiclass":
                raise ConfigError(
                    f"data.target_column={column} holds strings; only data.target_kind=multiclass takes class "
                    f"names (it is {kind}; multilabel takes a list of names per row)"
                )
            values = train.unique(column)
            if None in values:
                raise ConfigError(f"data.target_column={column}: a train row has no label (null); fill or drop it")
            self.names = tuple(sorted(values))
            self.ids = {name: i for i, name in enumerate(self.names)}
        elif kind == "multiclass":
            if isinstance(feature, datasets.Value) and feature.dtype.startswith("float"):
                raise ConfigError(
                    f"data.target_column={column} holds floats ({feature.dtype}); multiclass labels are class ids "
                    "or names. Cast the column to integers, or set data.target_kind=regression"
                )
            self.seen = {int(v) for v in train.unique(column) if v is not None}
        if kind == "multiclass" and isinstance(feature, datasets.ClassLabel):
            self.seen = {int(v) for v in train.unique(column) if v is not None}
        self.num_outputs = self._num_outputs(train, num_outputs)

    def _num_outputs(self, train: datasets.Dataset, given: int | None) -> int:
        if self.names:
            if given is not None and int(given) < len(self.names):
                raise ConfigError(
                    f"data.num_outputs={given}, but train has {len(self.names)} classes ({list(self.names)[:10]}); "
                    f"set data.num_outputs={len(self.names)} or null"
                )
            return int(given) if given is not None else len(self.names)
        if given is not None:
            return int(given)
        y = np.asarray(train[self.column])
        if self.kind == "multiclass":
            if y.dtype.kind not in "iu" or y.ndim != 1:
                raise ConfigError(
                    f"data.target_column={self.column}: multiclass labels are class ids or names, one per row; "
                    f"this column holds {y.dtype} of shape {y.shape[1:]}"
                )
            if len(y) and int(y.min()) < 0:
                row = int(np.argmin(y))
                raise ConfigError(
                    f"data.target_column={self.column}: row {row} of the train split has class {int(y[row])}; "
                    "class ids start at 0. Map the labels to 0..n-1 (or to names)"
                )
            return int(y.max()) + 1 if len(y) else 1
        return int(y.reshape(len(y), -1).shape[1])

    def _unseen(self, value: Any, where: str) -> UnseenLabel:
        shown = list(self.names)[:10] if self.names else sorted(self.seen or ())[:10]
        more = " ..." if len(self.names or self.seen or ()) > 10 else ""
        return UnseenLabel(
            f"{where}: label {value!r} never occurs in train, whose classes are {shown}{more}. Move such rows to "
            "train, drop them from the source, or set data.unseen_labels=drop to leave them out (they are counted)"
        )

    def __call__(self, value: Any, where: str, split: str = "train") -> Any:
        """The target of one row of ``split`` (``where`` names the row for a message);
        :class:`UnseenLabel` for a validation or test class train never shows."""
        if self.multi_names:
            return self._multi_hot(value, where, split)
        if self.ids is not None:
            if value not in self.ids:
                raise self._unseen(value, where)
            return self.ids[value]
        if self.seen is not None and split != "train" and value is not None:
            # an id outside [0, num_outputs) is not a class at all: the checks refuse it by its range
            if 0 <= int(value) < self.num_outputs and int(value) not in self.seen:
                raise self._unseen(value, where)
        return value

    def _multi_hot(self, value: Sequence[Any] | None, where: str, split: str) -> list[float]:
        row = [0.0] * self.num_outputs
        for item in value or ():
            i = self.ids.get(item) if self.ids is not None else int(item)
            if i is None or (split != "train" and self.seen is not None and i not in self.seen):
                raise self._unseen(item, where)
            row[i] = 1.0
        return row
