"""Reading user-provided data files with errors that name the file and what was expected."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from fuselab.errors import ConfigError


def require_file(path: str | Path, what: str, fix: str) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        raise ConfigError(f"{what}: {p} is a directory; a file is expected there. {fix}")
    if not p.is_file():
        raise ConfigError(f"{what}: {p} does not exist. {fix}")
    return p


def load_npy(
    path: str | Path, what: str, fix: str, shapes: tuple[tuple[int, ...], ...] | None = None, rows: int | None = None
) -> np.ndarray:
    """``np.load`` (memory-mapped) with its shape checked against ``shapes`` (trailing dims)."""
    p = require_file(path, what, fix)
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ConfigError(f"{what}: {p} cannot be read as a .npy array (truncated or corrupt?): {exc}") from exc
    if shapes is not None and not any(arr.shape[1:] == s for s in shapes):
        expected = " or ".join(f"(N, {', '.join(map(str, s))})" for s in shapes)
        raise ConfigError(f"{what}: {p} has shape {arr.shape}, expected {expected}")
    if rows is not None and arr.shape[0] != rows:
        raise ConfigError(f"{what}: {p} has {arr.shape[0]} rows, expected {rows} (one per sample of its split)")
    return arr


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_sha256(path: Path, expected: str | None, what: str) -> None:
    if expected and sha256(path) != expected.lower():
        raise ConfigError(f"{what}: {path} does not match its sha256 {expected} (a different or damaged file)")


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays; refuses any other class, so a
    hostile pickle cannot run code through it."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "slice"),
        ("builtins", "complex"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED or (module.startswith("numpy") and name.endswith("Dtype")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only arrays and containers are allowed")


def load_pickle(path: str | Path, what: str, fix: str) -> Any:
    p = require_file(path, what, fix)
    try:
        with open(p, "rb") as f:
            return _ArraysOnly(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, OSError) as exc:
        raise ConfigError(f"{what}: {p} cannot be unpickled (truncated, corrupt or not a data pickle): {exc}") from exc
