"""Where a checkpoint setting points: a checkpoint file, or a run directory's best checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

from fuselab.errors import ConfigError


def resolve_checkpoint(source: str | Path, setting: str = "model.init_from") -> Path:
    """``source``: a checkpoint file, or a run directory (its summary's best checkpoint, else
    its checkpoints/*.ckpt); a clear error naming ``setting`` otherwise."""
    path = Path(source).expanduser()
    if path.is_dir():
        best = None
        summary = path / "summary.json"
        if summary.is_file():
            try:
                best = json.loads(summary.read_text()).get("best_checkpoint")
            except (OSError, ValueError):
                best = None
        candidates = [Path(best)] if best else []
        candidates += sorted((path / "checkpoints").glob("*.ckpt")) if (path / "checkpoints").is_dir() else []
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise ConfigError(
                f"{setting}={source} is a directory without a checkpoint (no summary.json best_checkpoint, "
                "no checkpoints/*.ckpt); pass a run directory that finished training, or a .ckpt file"
            )
        return found
    if not path.is_file():
        raise ConfigError(f"{setting}={source} does not exist; pass a run directory or its checkpoints/*.ckpt")
    return path


def read_checkpoint(path: Path, setting: str) -> object:
    """``torch.load`` of tensors and plain data only (``weights_only``); anything else, a truncated
    or a foreign file, is one line naming ``setting`` (never torch's advice to load it unsafely)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        if "Weights only load failed" in str(exc):
            why = "it holds something other than tensors and plain data, which fuselab never unpickles"
        else:
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"{setting}={path} is not a readable checkpoint (truncated or corrupt?): {why}. Pass the best.ckpt "
            "or last.ckpt a fuselab run wrote"
        ) from exc
