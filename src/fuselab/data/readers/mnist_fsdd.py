"""The MNIST and Free Spoken Digit Dataset files that AV-MNIST, connected digits and moving
digits are built from: reading them (IDX images and labels, wav recordings), FSDD's takes and
splits, the folders and their content-based cache key, and resizing digits."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import numpy as np

from fuselab.data.sources import content_stamp
from fuselab.errors import ConfigError

# FSDD's recordings per speaker and digit: takes 0-4 test, 5-9 validation, 10-49 train
TAKES = {"test": range(0, 5), "val": range(5, 10), "train": range(10, 50)}


def fsdd_index(fsdd_dir: Path) -> list[tuple[int, str, int, Path]]:
    """(digit, speaker, take, path) of every ``{digit}_{speaker}_{take}.wav``."""
    rec = fsdd_dir / "recordings" if (fsdd_dir / "recordings").is_dir() else fsdd_dir
    found = []
    for wav in sorted(rec.glob("*.wav")):
        parts = wav.stem.split("_")
        if len(parts) == 3 and parts[0].isdigit() and parts[2].isdigit():
            found.append((int(parts[0]), parts[1], int(parts[2]), wav))
    if not found:
        raise ConfigError(f"FSDD: {rec} holds no recordings named digit_speaker_take.wav; set data.fsdd_dir")
    return found


def source_dirs(dataset: str, mnist_dir: str | None, fsdd_dir: str | None) -> tuple[Path, Path]:
    """The MNIST and FSDD folders a dataset is built from, resolved; a clear error naming the
    settings when one is unset or not a folder."""
    if not mnist_dir or not fsdd_dir:
        raise ConfigError(
            f"data={dataset} is built from MNIST and FSDD files: set data.mnist_dir=<folder of the MNIST "
            "idx files> and data.fsdd_dir=<FSDD folder> (or export FUSELAB_MNIST and FUSELAB_FSDD)"
        )
    dirs = Path(mnist_dir).expanduser().resolve(), Path(fsdd_dir).expanduser().resolve()
    for what, path in zip(("data.mnist_dir", "data.fsdd_dir"), dirs):
        if not path.is_dir():
            raise ConfigError(f"{what}={path} is not a folder")
    return dirs


def source_fingerprint(
    mnist_dir: Path, fsdd_dir: Path, params: dict[str, Any], cache_dir: Path | None = None
) -> dict[str, Any]:
    """The cache key of a dataset built from these folders: their files' contents (every MNIST idx
    file, every file of the FSDD folder), and the dataset's settings."""
    sources = sorted(mnist_dir.glob("*idx*")) + [fsdd_dir]
    stamps = {str(p): content_stamp(p, cache_dir)[1:] for p in sources if p.exists()}
    return {"version": 2, "sources": stamps, **params}


def read_idx(path: Path) -> np.ndarray:
    """An MNIST IDX file (optionally gzipped): uint8 images (N, 28, 28) or labels (N,)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise ConfigError(f"MNIST: {path} cannot be read (truncated or corrupt?): {exc}") from exc
    if len(data) < 8:
        raise ConfigError(f"MNIST: {path} is too short to be an IDX file")
    magic, n = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        expected, offset, shape = n * rows * cols, 16, (n, rows, cols)
    elif magic == 2049:
        expected, offset, shape = n, 8, (n,)
    else:
        raise ConfigError(f"MNIST: {path} has magic number {magic}, expected 2051 (images) or 2049 (labels)")
    if len(data) - offset != expected:
        raise ConfigError(f"MNIST: {path} holds {len(data) - offset} bytes of data, its header says {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def find_mnist(mnist_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    found = {}
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        for name in (f"{prefix}-{kind}.gz", f"{prefix}-{kind}"):
            if (mnist_dir / name).exists():
                found[kind] = mnist_dir / name
                break
        else:
            raise ConfigError(
                f"MNIST: {mnist_dir} has no {prefix}-{kind}(.gz); pass --mnist the folder of the IDX files"
            )
    return read_idx(found["images-idx3-ubyte"]), read_idx(found["labels-idx1-ubyte"])


def fsdd_recordings(fsdd_dir: Path) -> dict[str, dict[int, list[Path]]]:
    rec = fsdd_dir / "recordings" if (fsdd_dir / "recordings").is_dir() else fsdd_dir
    split: dict[str, dict[int, list[Path]]] = {"train": {d: [] for d in range(10)}, "test": {d: [] for d in range(10)}}
    for wav in sorted(rec.glob("*.wav")):
        parts = wav.stem.split("_")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
            continue
        digit, take = int(parts[0]), int(parts[2])
        split["test" if take <= 4 else "train"][digit].append(wav)
    for s, by_digit in split.items():
        missing = [d for d, files in by_digit.items() if not files]
        if missing:
            raise ConfigError(f"FSDD: {rec} has no {s} recordings of digits {missing}; pass --fsdd the FSDD folder")
    return split


def read_wav(path: Path) -> np.ndarray:
    """An FSDD recording as mono float32 (the audio extra's soundfile); an unreadable one is named."""
    from fuselab.data.readers.audio_features import load_wav

    try:
        return load_wav(path)[0]
    except ConfigError as exc:
        raise ConfigError(f"FSDD: {exc}") from exc


def resize_digits(images: np.ndarray, size: int) -> np.ndarray:
    """(N, 28, 28) -> (N, size, size) by area averaging (28 / size need not be whole)."""
    n, h, _ = images.shape
    edges = np.linspace(0, h, size + 1)
    weights = np.zeros((size, h), dtype=np.float32)
    for i in range(size):
        lo, hi = edges[i], edges[i + 1]
        for j in range(int(np.floor(lo)), int(np.ceil(hi))):
            weights[i, j] = max(0.0, min(hi, j + 1) - max(lo, j))
    weights /= weights.sum(1, keepdims=True)
    return np.einsum("ih,nhw,jw->nij", weights, images, weights).astype(np.float32)
