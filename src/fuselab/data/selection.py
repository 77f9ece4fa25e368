"""``data.modalities``: which of a dataset's modalities a run uses (null: all of them)."""

from __future__ import annotations

from collections.abc import Sequence

from fuselab.errors import ConfigError


def select_modalities(dataset: str, available: Sequence[str], modalities: Sequence[str] | None) -> list[str]:
    """The selected names, in the order given; a clear error for one name given as a string, an
    empty list, an unknown name or a name given twice."""
    example = f"data.modalities=[{','.join(list(available)[:2])}]"
    if isinstance(modalities, str):
        raise ConfigError(
            f"data.modalities={modalities} is one name; it takes a list, e.g. data.modalities=[{modalities}]"
        )
    if modalities is None:
        return list(available)
    if len(modalities) == 0:
        raise ConfigError(f"data.modalities=[] selects nothing; list the modalities ({example}) or use null for all")
    selected = [str(m) for m in modalities]
    unknown = [m for m in selected if m not in available]
    if unknown:
        raise ConfigError(
            f"data.modalities: {unknown} not in dataset '{dataset}'. It has: {list(available)}. Example: {example}"
        )
    if len(set(selected)) != len(selected):
        raise ConfigError(f"data.modalities lists a modality twice: {selected}")
    return selected
