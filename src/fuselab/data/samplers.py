"""The training order of a datamodule: shuffled, or class-balanced, as a function of (seed,
epoch) only, so a run resumed at epoch k sees the same batches as one never interrupted; and the
training loader that can resume in the middle of an epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Sampler


class EpochShuffle(Sampler[int]):
    """A random order that depends only on (seed, epoch): a run resumed at epoch k sees the same
    batches as one that was never interrupted. Lightning calls ``set_epoch`` every epoch."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0
        self.skip = 0  # indices the next iteration leaves out (a run resumed mid-epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> list[int]:
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.size).tolist()

    def __iter__(self) -> Iterator[int]:
        skip, self.skip = self.skip, 0
        return iter(self.order()[skip:])

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

    def order(self) -> list[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        return rng.choice(self.size, size=self.size, replace=True, p=self.p).tolist()


class ResumableLoader(DataLoader):
    """The training loader, resumable in the middle of an epoch: its ``state_dict`` (which
    Lightning keeps in every checkpoint) is the epoch and how many of its batches were trained
    (``batches_done``, Lightning's own count); given back on resume, the first iteration starts
    after them, in the same order, so no batch is trained twice or skipped."""

    def __init__(self, *args: Any, batches_done: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batches_done = batches_done

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(getattr(self.sampler, "epoch", 0)), "batches_done": int(self._batches_done())}

    def load_state_dict(self, state: dict[str, int]) -> None:
        done = int(state.get("batches_done", 0))
        if isinstance(self.sampler, EpochShuffle) and 0 < done < len(self):
            self.sampler.set_epoch(int(state.get("epoch", 0)))
            self.sampler.skip = done * int(self.batch_size or 1)
