"""OmegaConf resolvers that name sweep and job directories; registered when ``fuselab.conf`` is
imported (Hydra imports it to read the configs), so they exist wherever the configs are composed."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from omegaconf import OmegaConf

from fuselab.config.names import check_name


def short_hash(value: Any, length: int = 8) -> str:
    """A short stable hash of a value or a list of values (job directory names)."""
    text = str(list(value)) if hasattr(value, "__iter__") and not isinstance(value, str) else str(value)
    return hashlib.sha1(text.encode()).hexdigest()[:length]


SWEEP_ENV = "FUSELAB_SWEEP_ID"


def sweep_id(overrides: Any, name: Any = None) -> str:
    """A sweep directory name that is the same for the same command (so re-running it resumes)
    and differs between commands: ``name`` if given, else a hash of the command's overrides.

    Each job's config lists only that job's overrides, and parallel launchers resolve the sweep
    directory in their workers, so the id is fixed once at the start of the multirun
    (:class:`fuselab.reports.sweep_report.SweepReport`) and handed to every job through the
    environment."""
    fixed = os.environ.get(SWEEP_ENV)
    if fixed:
        return fixed
    if name:
        return check_name(name, "sweep_name")
    return "sweep-" + short_hash(overrides)


def recurrent_cell(encoder: Any, default: str = "gru") -> str:
    """The recurrent cell of an encoder choice (``rnn.cell``), ``default`` for the Transformer:
    the decoder's cell follows the encoders' unless set."""
    return str(encoder) if str(encoder) in ("rnn", "lstm", "gru") else default


def folder_name(value: Any, setting: str = "experiment_name") -> str:
    """``value`` if it is one folder name (the run and sweep directories are made of it)."""
    return check_name(value, setting)


def register() -> None:
    for name, fn in (
        ("fuselab_name", folder_name),
        ("fuselab_hash", short_hash),
        ("fuselab_sweep_id", sweep_id),
        ("fuselab_cell", recurrent_cell),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
