"""The data contract shared by every datamodule and every model.

A datamodule describes what it yields with :meth:`PairedDataModule.describe`: a
:class:`DataDescription` holding one :class:`ModalitySpec` per selected modality, the
:class:`TargetSpec` (what is predicted) and whether the sequences are aligned. Models are built
from that description alone, never from dimensions typed into configs. A batch is a dict::

    {"inputs": {name: ModalityBatch(x, lengths, present)}, "target": Tensor}

(a ``generation`` target is (B, L) token ids: start token, the tokens, end token, then padding;
a batch may also carry ``"references"``: per sample, the reference texts its hypothesis is
scored against, when there are several).

with ``x`` padded along time for ``sequence``/``tokens`` modalities, ``lengths`` (B,) int64 for
those kinds (``None`` for static ones), and ``present`` (B,) bool saying whether the modality was
observed for that sample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import torch

MODALITY_KINDS = ("sequence", "tokens", "image", "vector", "video")
TARGET_KINDS = ("multiclass", "multilabel", "regression", "generation")
# the first ids of every generation vocabulary
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)
TEMPORAL_KINDS = ("sequence", "tokens", "video")


@dataclass(frozen=True)
class ModalitySpec:
    """One modality as a model sees it.

    shape, per sample:
      sequence: (T, D) float, T may be None (variable)
      tokens:   (T,) int, T may be None; ``vocab_size`` is required
      image:    (C, H, W) float
      vector:   (D,) float
      video:    (T, C, H, W) float, T may be None; stored and batched as (T, C*H*W) frames
    """

    name: str
    kind: str
    shape: tuple[int | None, ...]
    vocab_size: int | None = None
    # tokens from text: the word of each id (id 0 padding, 1 unknown), for pretrained word vectors
    vocabulary: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in MODALITY_KINDS:
            raise ValueError(f"modality {self.name!r}: kind {self.kind!r} is not one of {MODALITY_KINDS}")
        expected = {"sequence": 2, "tokens": 1, "image": 3, "vector": 1, "video": 4}[self.kind]
        if len(self.shape) != expected:
            raise ValueError(
                f"modality {self.name!r} of kind {self.kind!r} needs a shape of {expected} dims, got {self.shape}"
            )
        if self.kind == "tokens" and not self.vocab_size:
            raise ValueError(f"tokens modality {self.name!r} needs vocab_size")
        if self.vocabulary and len(self.vocabulary) != self.vocab_size:
            raise ValueError(
                f"tokens modality {self.name!r}: {len(self.vocabulary)} words for vocab_size={self.vocab_size}"
            )

    @property
    def is_temporal(self) -> bool:
        return self.kind in TEMPORAL_KINDS

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        if self.vocabulary:
            d["vocabulary"] = list(self.vocabulary)
        else:
            d.pop("vocabulary")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModalitySpec:
        return cls(
            name=d["name"],
            kind=d["kind"],
            shape=tuple(d["shape"]),
            vocab_size=d.get("vocab_size"),
            vocabulary=tuple(d.get("vocabulary", ())),
        )


@dataclass(frozen=True)
class TargetSpec:
    """What is predicted: ``multiclass`` (num_outputs classes), ``multilabel`` (num_outputs
    labels), ``regression`` (num_outputs values) or ``generation``: a token sequence over
    ``vocabulary`` (num_outputs = its size), whose first entries are :data:`SPECIAL_TOKENS`
    (pad 0, start 1, end 2, unknown 3). ``word_level``: hypotheses are the tokens joined by
    spaces (words); otherwise concatenated (characters)."""

    kind: str
    num_outputs: int
    class_names: tuple[str, ...] = field(default_factory=tuple)
    # "default", or "affect" for sentiment regression (Acc2/Acc7/F1/MAE/Corr, MulT/MMSA protocol)
    metric_set: str = "default"
    vocabulary: tuple[str, ...] = field(default_factory=tuple)
    word_level: bool = True

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise ValueError(f"target kind {self.kind!r} is not one of {TARGET_KINDS}")
        if self.num_outputs < 1:
            raise ValueError(f"a target needs num_outputs >= 1, got {self.num_outputs}")
        if self.kind == "generation":
            if tuple(self.vocabulary[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
                raise ValueError(f"a generation vocabulary starts with {SPECIAL_TOKENS}")
            if self.num_outputs != len(self.vocabulary):
                raise ValueError(f"num_outputs={self.num_outputs} is not the vocabulary's size {len(self.vocabulary)}")

    @property
    def is_generation(self) -> bool:
        return self.kind == "generation"

    def detokenize(self, ids: Any) -> str:
        """Token ids -> text: stops at the first end token, drops pad and start tokens."""
        words = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                words.append(self.vocabulary[i] if 0 <= i < len(self.vocabulary) else SPECIAL_TOKENS[UNK_ID])
        return (" " if self.word_level else "").join(words)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "num_outputs": self.num_outputs,
            "class_names": list(self.class_names),
            "metric_set": self.metric_set,
            "vocabulary": list(self.vocabulary),
            "word_level": self.word_level,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TargetSpec:
        return cls(
            kind=d["kind"],
            num_outputs=int(d["num_outputs"]),
            class_names=tuple(d.get("class_names", ())),
            metric_set=d.get("metric_set", "default"),
            vocabulary=tuple(d.get("vocabulary", ())),
            word_level=bool(d.get("word_level", True)),
        )


@dataclass(frozen=True)
class DataDescription:
    """Everything a model is built from: the selected modalities (in order), the target, and
    whether every sequence modality shares its per-sample lengths (``aligned``: early fusion
    may concatenate their steps)."""

    modalities: dict[str, ModalitySpec]
    target: TargetSpec
    aligned: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "modalities": {m: s.to_dict() for m, s in self.modalities.items()},
            "target": self.target.to_dict(),
            "aligned": self.aligned,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataDescription:
        return cls(
            {m: ModalitySpec.from_dict(s) for m, s in d["modalities"].items()},
            TargetSpec.from_dict(d["target"]),
            bool(d.get("aligned", False)),
        )


class ModalityBatch(NamedTuple):
    """One modality of a batch. ``lengths`` is None for static (image, vector) modalities."""

    x: torch.Tensor
    lengths: torch.Tensor | None
    present: torch.Tensor
