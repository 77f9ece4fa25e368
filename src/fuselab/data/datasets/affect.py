"""CMU-MOSI and CMU-MOSEI from the pickles that MultiBench, MulT and MMSA distribute.

Layouts (all: ``{"train"|"valid"|"test": {...}}``):
- MultiBench (``mosi_raw.pkl``, ``mosei_raw.pkl``) and MulT (``mosi_data.pkl``,
  ``mosei_senti_data.pkl``, ``*_noalign.pkl``): ``text``, ``audio``, ``vision`` arrays
  (N, T, D), zero-padded at the START, ``labels`` (N, 1, 1) in [-3, 3].
- MMSA (``aligned_50.pkl``, ``unaligned_50.pkl``): ``text`` (N, T, D), ``audio``, ``vision``,
  zero-padded at the END, ``regression_labels`` (N,), and for unaligned files
  ``audio_lengths``/``vision_lengths``.

Whatever the layout, the modalities are ``text``, ``audio``, ``vision`` (sequences with their
true lengths), the task is regression with the affect metrics. -inf/NaN features (COVAREP audio
has some) are set to 0 and counted (``clean=zero``), or refused (``clean=refuse``).

Loading a pickle can run code: fuselab only opens the file you name, and unpickles with a
loader that accepts arrays and containers alone.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from fuselab.data.datamodule import PairedDataModule, PreparedData
from fuselab.data.files import load_pickle, require_file, verify_sha256
from fuselab.data.sources import content_stamp
from fuselab.data.specs import ModalitySpec, TargetSpec
from fuselab.errors import ConfigError

log = logging.getLogger(__name__)

MODALITIES = ("text", "audio", "vision")
SPLITS = {"train": "train", "val": "valid", "test": "test"}
FIX = "Set data.path to a MultiBench, MulT or MMSA pickle (see the README's data section)."


def detect_layout(split: dict[str, Any], path: Path) -> str:
    keys = set(split)
    if "regression_labels" in keys:
        return "mmsa"
    if "labels" in keys:
        return "multibench"
    raise ConfigError(
        f"{path}: its splits have keys {sorted(keys)}; expected 'labels' (MultiBench/MulT) or "
        "'regression_labels' (MMSA) beside 'text', 'audio', 'vision'"
    )


def _nonzero_rows(x: np.ndarray) -> np.ndarray:
    return np.abs(x).sum(-1) != 0  # (N, T)


def valid_spans(x: np.ndarray, padding: str) -> tuple[np.ndarray, np.ndarray]:
    """(start, length) per sample of the unpadded steps, for pre- or post-padded arrays."""
    nz = _nonzero_rows(x)
    t = x.shape[1]
    any_nz = nz.any(1)
    if padding == "pre":
        start = np.where(any_nz, nz.argmax(1), t - 1)
        return start, t - start
    last = t - 1 - nz[:, ::-1].argmax(1)
    return np.zeros(len(x), dtype=int), np.where(any_nz, last + 1, 1)


class AffectDataModule(PairedDataModule):
    def __init__(
        self,
        path: str,
        dataset: str = "mosi",
        layout: str = "auto",
        sha256: str | None = None,
        clean: str = "zero",
        **loader_kwargs: Any,
    ) -> None:
        if dataset not in ("mosi", "mosei"):
            raise ConfigError(f"data.dataset={dataset!r} is not one of ['mosi', 'mosei']")
        if layout not in ("auto", "multibench", "mult", "mmsa"):
            raise ConfigError(f"data.layout={layout!r} is not one of ['auto', 'multibench', 'mult', 'mmsa']")
        if clean not in ("zero", "refuse"):
            raise ConfigError(f"data.clean={clean!r} is not one of ['zero', 'refuse']")
        if not path:
            env = f"FUSELAB_{dataset.upper()}"
            raise ConfigError(
                f"data.path is not set. {FIX} data={dataset} reads it from ${env} and "
                f"data={dataset}_unaligned from ${env}_UNALIGNED when they are exported."
            )
        self.name = dataset
        self.path = Path(path).expanduser().resolve()
        self.layout, self.sha256, self.clean = layout, sha256, clean
        super().__init__(**loader_kwargs)

    def modality_names(self) -> list[str]:
        return list(MODALITIES)

    def fingerprint(self) -> dict[str, Any]:
        p = require_file(self.path, f"data={self.name}", FIX)
        return {
            "version": 1,
            "path": str(p),
            "content": content_stamp(p, self.cache_dir),
            "layout": self.layout,
            "clean": self.clean,
        }

    def build(self, scratch: Path) -> PreparedData:
        path = require_file(self.path, f"data={self.name}", FIX)
        verify_sha256(path, self.sha256, f"data={self.name}")
        data = load_pickle(path, f"data={self.name}", FIX)
        missing = [s for s in SPLITS.values() if not isinstance(data, dict) or s not in data]
        if missing:
            found = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ConfigError(f"{path}: no split(s) {missing}; found {found}. Expected keys 'train', 'valid', 'test'")
        layout = detect_layout(data["train"], path) if self.layout == "auto" else self.layout
        padding = "post" if layout == "mmsa" else "pre"
        lengths_t = {m: np.asarray(data["train"][m]).shape[1] for m in MODALITIES if m in data["train"]}
        aligned = len(set(lengths_t.values())) == 1
        out, cleaned = {}, {m: 0 for m in MODALITIES}
        dims: dict[str, int] = {}
        for ours, theirs in SPLITS.items():
            split = data[theirs]
            columns: dict[str, Any] = {}
            arrays = {}
            for m in MODALITIES:
                if m not in split:
                    raise ConfigError(f"{path}: split '{theirs}' has no '{m}'; keys found: {sorted(split)}")
                x = np.asarray(split[m], dtype=np.float32)
                if x.ndim != 3:
                    raise ConfigError(f"{path}: '{theirs}/{m}' has shape {x.shape}, expected (N, T, D)")
                bad = ~np.isfinite(x)
                if bad.any():
                    if self.clean == "refuse":
                        raise ConfigError(
                            f"{path}: '{theirs}/{m}' has {int(bad.sum())} NaN/inf values; "
                            "set data.clean=zero to replace them by 0"
                        )
                    cleaned[m] += int(bad.sum())
                    x = np.where(bad, 0.0, x).astype(np.float32)
                if dims.setdefault(m, x.shape[2]) != x.shape[2]:
                    raise ConfigError(f"{path}: '{theirs}/{m}' has {x.shape[2]} features, train has {dims[m]}")
                arrays[m] = x
            labels = self._labels(split, layout, path, theirs)
            n = len(labels)
            for m, x in arrays.items():
                if len(x) != n:
                    raise ConfigError(f"{path}: '{theirs}/{m}' has {len(x)} samples but {n} labels")
            spans = self._spans(split, arrays, layout, padding, aligned)
            for m, x in arrays.items():
                start, length = spans[m]
                columns[m] = [x[i, start[i] : start[i] + length[i]] for i in range(n)]
            columns["label"] = labels.astype(np.float32)
            features = datasets.Features(
                {m: datasets.Array2D(shape=(None, dims[m]), dtype="float32") for m in MODALITIES}
                | {"label": datasets.Value("float32")}
            )
            out[ours] = datasets.Dataset.from_dict(columns, features=features)
        for m, count in cleaned.items():
            if count:
                log.warning("%s: set %d NaN/inf values of %s to 0", path.name, count, m)
        specs = {m: ModalitySpec(m, "sequence", (None, dims[m])) for m in MODALITIES}
        notes = {"layout": layout, "cleaned_non_finite": cleaned}
        target = TargetSpec("regression", 1, metric_set="affect")
        return PreparedData(datasets.DatasetDict(out), specs, target, aligned=aligned, notes=notes)

    @staticmethod
    def _labels(split: dict[str, Any], layout: str, path: Path, name: str) -> np.ndarray:
        key = "regression_labels" if layout == "mmsa" else "labels"
        if key not in split:
            raise ConfigError(f"{path}: split '{name}' has no '{key}' (layout {layout}); keys found: {sorted(split)}")
        return np.asarray(split[key], dtype=np.float32).reshape(len(split[key]), -1)[:, 0]

    @staticmethod
    def _spans(split: dict[str, Any], arrays: dict[str, np.ndarray], layout: str, padding: str, aligned: bool):
        spans = {m: valid_spans(x, padding) for m, x in arrays.items()}
        if layout == "mmsa":
            for m in ("audio", "vision"):
                if f"{m}_lengths" in split:
                    length = np.clip(np.asarray(split[f"{m}_lengths"], dtype=int), 1, arrays[m].shape[1])
                    spans[m] = (np.zeros(len(length), dtype=int), length)
        if aligned and padding == "pre":
            spans = {m: spans["text"] for m in arrays}  # MultiBench: text decides where the words start
        if aligned and layout == "mmsa" and not any(f"{m}_lengths" in split for m in ("audio", "vision")):
            spans = {m: spans["text"] for m in arrays}
        return spans
