"""Datamodules and the data contract (:mod:`fuselab.data.specs`)."""

from fuselab.data.datamodule import PairedDataModule
from fuselab.data.specs import Batch, ModalityBatch, ModalitySpec, TaskSpec

__all__ = ["Batch", "ModalityBatch", "ModalitySpec", "PairedDataModule", "TaskSpec"]
