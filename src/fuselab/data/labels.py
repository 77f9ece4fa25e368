"""The target column of someone else's dataset: class ids, a ``ClassLabel`` feature (ids with
names) or strings (``"cat"``, ``"dog"``). Strings become ids in the sorted order of the names the
train split holds; the names are kept in the data description (confusion matrices and per-class
metrics show them). A string in validation or test that train never shows is refused, naming it.
"""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np

from fuselab.errors import ConfigError

STRING_TYPES = ("string", "large_string")


class Labels:
    """How one dataset's target values become what a model is trained on."""

    def __init__(self, train: datasets.Dataset, column: str, kind: str, num_outputs: int | None) -> None:
        self.column, self.kind = column, kind
        feature = train.features[column]
        self.ids: dict[str, int] | None = None
        self.names: tuple[str, ...] = ()
        if isinstance(feature, datasets.ClassLabel):
            self.names = tuple(feature.names)
        elif isinstance(feature, datasets.Value) and feature.dtype in STRING_TYPES:
            if kind != "multiclass":
                raise ConfigError(
                    f"data.target_column={column} holds strings; only data.target_kind=multiclass takes class "
                    f"names (it is {kind})"
                )
            values = train.unique(column)
            if None in values:
                raise ConfigError(f"data.target_column={column}: a train row has no label (null); fill or drop it")
            self.names = tuple(sorted(values))
            self.ids = {name: i for i, name in enumerate(self.names)}
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
            if y.dtype.kind not in "iuf" or y.ndim != 1:
                raise ConfigError(
                    f"data.target_column={self.column}: multiclass labels are class ids or names, one per row; "
                    f"this column holds {y.dtype} of shape {y.shape[1:]}"
                )
            return int(np.nanmax(y)) + 1 if len(y) else 1
        return int(y.reshape(len(y), -1).shape[1])

    def __call__(self, value: Any, where: str) -> Any:
        """The target of one row (``where`` names the row for a message)."""
        if self.ids is None:
            return value
        try:
            return self.ids[value]
        except KeyError:
            raise ConfigError(
                f"{where}: label {value!r} never occurs in train, whose classes are {list(self.names)[:10]}"
                f"{' ...' if len(self.names) > 10 else ''}. Move such rows to train, or drop them from the source"
            ) from None
