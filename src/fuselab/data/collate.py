"""Turn rows fetched from an Arrow table into a padded batch (see :mod:`fuselab.data.specs`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from fuselab.data.specs import BOS_ID, EOS_ID, PAD_ID, ModalityBatch, ModalitySpec, TargetSpec

PRESENT_PREFIX = "present__"
# the optional column of a generation dataset holding each sample's reference texts
REFERENCES_COLUMN = "references"


def present_column(name: str) -> str:
    """Name of the optional bool column that says whether ``name`` was observed per sample."""
    return PRESENT_PREFIX + name


def _pad(arrays: Sequence[np.ndarray], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    t_max = max(int(lengths.max()), 1)
    if lengths.min() == t_max:  # all the same length (e.g. spectrograms): one copy
        return np.stack(arrays).astype(dtype, copy=False), lengths
    trailing = arrays[0].shape[1:]
    out = np.zeros((len(arrays), t_max, *trailing), dtype=dtype)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
    return out, lengths


def move_batch(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """A collated batch on ``device``: x, present and the target move; ``lengths`` stay on the
    CPU, where ``pack_padded_sequence`` reads them (no device-to-host copy per step). Batches are
    collated on the CPU, so on a CPU device there is nothing to do."""
    if device.type == "cpu":
        return batch
    inputs = {
        m: mb._replace(x=mb.x.to(device, non_blocking=True), present=mb.present.to(device, non_blocking=True))
        for m, mb in batch["inputs"].items()
    }
    return {**batch, "inputs": inputs, "target": batch["target"].to(device, non_blocking=True)}


def token_targets(sequences: Sequence[np.ndarray]) -> torch.Tensor:
    """Token id sequences -> (B, max_len + 2) int64: start, the tokens, end, then padding."""
    longest = max((len(t) for t in sequences), default=0)
    out = np.full((len(sequences), longest + 2), PAD_ID, dtype=np.int64)
    out[:, 0] = BOS_ID
    for i, t in enumerate(sequences):
        out[i, 1 : 1 + len(t)] = t
        out[i, 1 + len(t)] = EOS_ID
    return torch.from_numpy(out)


class PaddedCollate:
    """Collate a columnar batch (``{column: values}``, as ``datasets`` returns for a list of
    indices) into padded tensors, lengths and present masks.

    A sequence of length 0 is treated as absent; its length is reported as 1 (one zero step) so
    packed recurrent encoders stay valid, and the model ignores it through ``present``.
    """

    def __init__(
        self,
        specs: Mapping[str, ModalitySpec],
        target_spec: TargetSpec,
        target_column: str = "label",
        stats: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        self.specs = dict(specs)
        self.target_spec = target_spec
        self.target_column = target_column
        # per-modality (mean, std) from the train split; padding stays exactly zero
        self.stats = dict(stats or {})

    def __call__(self, columns: Mapping[str, Any]) -> dict[str, Any]:
        inputs: dict[str, ModalityBatch] = {}
        batch_size = len(columns[self.target_column])
        for name, spec in self.specs.items():
            values = columns[name]
            present = columns.get(present_column(name))
            present_t = (
                torch.ones(batch_size, dtype=torch.bool)
                if present is None
                else torch.as_tensor(np.asarray(present, dtype=bool))
            )
            if spec.is_temporal:
                dtype = np.int64 if spec.kind == "tokens" else np.float32
                arrays = [np.asarray(v) for v in values]
                x, lengths = _pad(arrays, dtype)
                if name in self.stats:
                    mean, std = self.stats[name]
                    valid = (np.arange(x.shape[1])[None, :] < lengths[:, None])[..., None]
                    x = np.where(valid, (x - mean) / std, 0.0).astype(dtype)
                empty = lengths == 0
                if empty.any():
                    present_t = present_t & torch.as_tensor(~empty)
                    lengths = np.where(empty, 1, lengths)
                inputs[name] = ModalityBatch(torch.from_numpy(x), torch.from_numpy(lengths), present_t)
            else:
                arr = np.require(values, dtype=np.float32, requirements="W")
                if name in self.stats:
                    mean, std = self.stats[name]
                    arr = (arr - mean) / std
                inputs[name] = ModalityBatch(torch.as_tensor(arr, dtype=torch.float32), None, present_t)
        batch = {"inputs": inputs, "target": self._target(columns[self.target_column])}
        if self.target_spec.is_generation and REFERENCES_COLUMN in columns:
            batch[REFERENCES_COLUMN] = [list(r) for r in columns[REFERENCES_COLUMN]]
        return batch

    def _target(self, values: Any) -> torch.Tensor:
        if self.target_spec.is_generation:
            return token_targets([np.asarray(v) for v in values])
        if self.target_spec.kind == "multiclass":
            return torch.as_tensor(np.require(values, dtype=np.int64, requirements="W"))
        y = torch.as_tensor(np.require(values, dtype=np.float32, requirements="W"))
        return y.reshape(len(y), -1) if self.target_spec.kind == "multilabel" or y.ndim > 1 else y.reshape(-1, 1)
