"""The training order of a datamodule: shuffled, or class-balanced, as a function of (seed,
epoch) only, so a run resumed at epoch k sees the same batches as one never interrupted."""

from __future__ import annotations

import numpy as np
from torch.utils.data import Sampler


class EpochShuffle(Sampler[int]):
    """A random order that depends only on (seed, epoch): a run resumed at epoch k sees the same
    batches as one that was never interrupted. Lightning calls ``set_epoch`` every epoch."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.size).tolist())

    def __len__(self) -> int:
        return self.size


class EpochBalancedSampler(EpochShuffle):
    """Draws ``size`` training samples per epoch, with replacement, every class equally likely
    (sample weight 1 / its class's count); like :class:`EpochShuffle`, the draw depends only on
    (seed, epoch), so a resumed run sees the same batches."""

    def __init__(self, labels: np.ndarray, seed: int) -> None:
        super().__init__(len(labels), seed)
        labels = np.asarray(labels).astype(np.int64).ravel()
        counts = np.bincount(labels)
        weights = 1.0 / counts[labels]
        self.p = weights / weights.sum()

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        return iter(rng.choice(self.size, size=self.size, replace=True, p=self.p).tolist())
