"""The data contract shared by every datamodule and every model.

A datamodule describes what it yields with one :class:`ModalitySpec` per modality and one
:class:`TaskSpec`; models are built from these specs alone, never from dimensions typed into
configs. A batch is a dict::

    {"inputs": {name: ModalityBatch(x, lengths, present)}, "target": Tensor}

with ``x`` padded along time for ``sequence``/``tokens`` modalities, ``lengths`` (B,) int64 for
those kinds (``None`` for static ones), and ``present`` (B,) bool saying whether the modality was
observed for that sample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import torch

MODALITY_KINDS = ("sequence", "tokens", "image", "vector")
TASK_KINDS = ("multiclass", "multilabel", "regression")
TEMPORAL_KINDS = ("sequence", "tokens")


@dataclass(frozen=True)
class ModalitySpec:
    """One modality as a model sees it.

    shape, per sample:
      sequence: (T, D) float, T may be None (variable)
      tokens:   (T,) int, T may be None; ``vocab_size`` is required
      image:    (C, H, W) float
      vector:   (D,) float
    """

    name: str
    kind: str
    shape: tuple[int | None, ...]
    vocab_size: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in MODALITY_KINDS:
            raise ValueError(f"modality {self.name!r}: kind {self.kind!r} is not one of {MODALITY_KINDS}")
        expected = {"sequence": 2, "tokens": 1, "image": 3, "vector": 1}[self.kind]
        if len(self.shape) != expected:
            raise ValueError(
                f"modality {self.name!r} of kind {self.kind!r} needs a shape of {expected} dims, got {self.shape}"
            )
        if self.kind == "tokens" and not self.vocab_size:
            raise ValueError(f"tokens modality {self.name!r} needs vocab_size")

    @property
    def is_temporal(self) -> bool:
        return self.kind in TEMPORAL_KINDS

    @property
    def feature_dim(self) -> int | None:
        """Per-step feature size of a sequence, or the size of a vector; None otherwise."""
        if self.kind in ("sequence", "vector"):
            return int(self.shape[-1])  # type: ignore[arg-type]
        return None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModalitySpec:
        return cls(name=d["name"], kind=d["kind"], shape=tuple(d["shape"]), vocab_size=d.get("vocab_size"))


@dataclass(frozen=True)
class TaskSpec:
    """What is predicted: ``multiclass`` (num_outputs classes), ``multilabel`` (num_outputs
    labels) or ``regression`` (num_outputs values)."""

    kind: str
    num_outputs: int
    class_names: tuple[str, ...] = field(default_factory=tuple)
    # "default", or "affect" for sentiment regression (Acc2/Acc7/F1/MAE/Corr, MulT/MMSA protocol)
    metric_set: str = "default"

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task kind {self.kind!r} is not one of {TASK_KINDS}")
        if self.num_outputs < 1:
            raise ValueError(f"task needs num_outputs >= 1, got {self.num_outputs}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "num_outputs": self.num_outputs, "class_names": list(self.class_names),
                "metric_set": self.metric_set}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskSpec:
        return cls(kind=d["kind"], num_outputs=int(d["num_outputs"]), class_names=tuple(d.get("class_names", ())),
                   metric_set=d.get("metric_set", "default"))  # fmt: skip


class ModalityBatch(NamedTuple):
    """One modality of a batch. ``lengths`` is None for static (image, vector) modalities."""

    x: torch.Tensor
    lengths: torch.Tensor | None
    present: torch.Tensor


Batch = dict[str, Any]
