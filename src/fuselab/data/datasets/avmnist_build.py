"""Recreate AV-MNIST (Vielzeuf et al. 2018; MultiBench's layout) from MNIST and the Free Spoken
Digit Dataset.

- image: MNIST digits with 75% of their energy removed by PCA: projected onto the leading
  principal components (fitted on the train images) that hold 25% of the variance.
- audio: an FSDD recording of the same digit, with white noise at a random SNR, as a 112x112
  log-magnitude spectrogram (112 frequency bins x 112 frames), scaled to 0-255.
- pairs: each MNIST image is paired with a recording of its label drawn with a fixed seed;
  FSDD's official split is kept (takes 0-4 test, 5-49 train), so no recording is in both.

The original used TIDIGITS speech and ESC-50 noise, which are not freely available: the speech
here is FSDD (6 speakers, 2,700 train recordings reused about 22 times each) and the noise is
white, so numbers are not comparable with the published ones.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from fuselab.data.readers.mnist_fsdd import find_mnist, fsdd_recordings, read_wav
from fuselab.errors import ConfigError

log = logging.getLogger(__name__)

N_FFT = 222  # 112 frequency bins
HOP = 32
SIZE = 112


CHUNK = 1000  # samples computed and written at a time: the peak memory does not grow with the dataset


def pca_basis(train: np.ndarray, keep_energy: float = 0.25) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean (D,) and the leading principal directions (D, k) that hold ``keep_energy`` of the
    train variance, from sums accumulated a chunk at a time (float64)."""
    x = train.reshape(len(train), -1)
    total = np.zeros(x.shape[1])
    outer = np.zeros((x.shape[1], x.shape[1]))
    for i in range(0, len(x), CHUNK):
        c = x[i : i + CHUNK].astype(np.float64)
        total += c.sum(0)
        outer += c.T @ c
    n = len(x)
    mean = total / n
    cov = (outer - n * np.outer(mean, mean)) / (n - 1)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    k = int(np.searchsorted(np.cumsum(values) / values.sum(), keep_energy) + 1)
    return mean, vectors[:, :k], k


def pca_degrade(images: np.ndarray, mean: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Images projected onto ``basis`` (and back), flattened (N, D) float32 in [0, 255]."""
    flat = images.reshape(len(images), -1).astype(np.float64) - mean
    return np.clip(flat @ basis @ basis.T + mean, 0, 255).astype(np.float32)


def spectrogram(wave: np.ndarray) -> np.ndarray:
    """(112 frames, 112 bins) log magnitude (librosa's STFT: Hann window, no centring), frames
    resampled linearly to 112 over the recording."""
    from fuselab.data.readers.audio_features import stft_log_magnitude

    spec = stft_log_magnitude(wave, N_FFT, HOP)[:, :SIZE]
    frames = len(spec)
    positions = np.linspace(0, frames - 1, SIZE)
    lo = np.floor(positions).astype(int)
    hi = np.minimum(lo + 1, frames - 1)
    w = (positions - lo)[:, None]
    return ((1 - w) * spec[lo] + w * spec[hi]).astype(np.float32)


class NpyWriter:
    """An .npy file written a chunk at a time (the header first, then the rows in order)."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: str = "float32") -> None:
        self.f = path.open("wb")
        self.shape, self.dtype, self.rows = shape, np.dtype(dtype), 0
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(self.f, header)

    def write(self, rows: np.ndarray) -> None:
        self.f.write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())
        self.rows += len(rows)

    def close(self) -> None:
        self.f.close()
        if self.rows != self.shape[0]:
            raise RuntimeError(f"{self.f.name}: {self.rows} rows written, {self.shape[0]} announced")


# values of the log-magnitude spectrograms: the train scale is read from a histogram over this range
HIST_RANGE, HIST_BINS = (0.0, 32.0), 320_000


def build_avmnist(
    mnist: str | Path,
    fsdd: str | Path,
    out: str | Path,
    seed: int = 0,
    snr_db: tuple[float, float] = (0.0, 20.0),
    train_limit: int | None = None,
    test_limit: int | None = None,
    progress: bool = True,
) -> dict:
    """Write AV-MNIST into ``out`` (new or empty) a chunk of :data:`CHUNK` samples at a time, so
    the peak memory stays bounded whatever the size: the PCA from accumulated sums, the audio
    scale (the train split's 99.9th percentile) from a histogram in a first pass over the train
    spectrograms, which a second pass recomputes from the same random draws and writes."""
    from tqdm.auto import tqdm

    mnist, fsdd, out = Path(mnist).expanduser(), Path(fsdd).expanduser(), Path(out).expanduser()
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} exists and is not empty; nothing is overwritten: choose a new folder")
    (train_x, train_y), (test_x, test_y) = find_mnist(mnist, "train"), find_mnist(mnist, "test")
    mean, basis, k = pca_basis(train_x)  # fitted on every train image, whatever the limit
    if train_limit:
        train_x, train_y = train_x[:train_limit], train_y[:train_limit]
    if test_limit:
        test_x, test_y = test_x[:test_limit], test_y[:test_limit]
    recordings = fsdd_recordings(fsdd)
    waves = {s: {d: [read_wav(p) for p in files] for d, files in by.items()} for s, by in recordings.items()}
    labels = {"train": train_y, "test": test_y}
    images = {"train": train_x, "test": test_x}

    def spectrogram_chunks(splits: tuple[str, ...], bar: Any):
        """(split, spectrograms) a chunk at a time; the random draws (recording, SNR, noise)
        come from one stream seeded with ``seed``, train first, so both passes see the same."""
        rng = np.random.default_rng(seed)
        for split in splits:
            y = labels[split]
            for i in range(0, len(y), CHUNK):
                chunk = np.empty((len(y[i : i + CHUNK]), SIZE, SIZE), dtype=np.float32)
                for j, d in enumerate(y[i : i + CHUNK]):
                    pool = waves[split][int(d)]
                    wave = pool[int(rng.integers(len(pool)))]
                    snr = rng.uniform(*snr_db)
                    noise = rng.standard_normal(len(wave)).astype(np.float32)
                    noise *= np.sqrt(np.mean(wave**2) / (10 ** (snr / 10)) / max(np.mean(noise**2), 1e-12))
                    chunk[j] = spectrogram(wave + noise)
                bar.update(len(chunk))
                yield split, chunk

    total = 2 * len(train_y) + len(test_y)
    with tqdm(total=total, desc="AV-MNIST spectrograms", unit="sample", disable=not progress) as bar:
        hist = np.zeros(HIST_BINS, dtype=np.int64)
        for _, chunk in spectrogram_chunks(("train",), bar):
            hist += np.histogram(np.clip(chunk, *HIST_RANGE), bins=HIST_BINS, range=HIST_RANGE)[0]
        rank = np.searchsorted(np.cumsum(hist), 0.999 * hist.sum())
        top = float(HIST_RANGE[0] + (rank + 1) * (HIST_RANGE[1] - HIST_RANGE[0]) / HIST_BINS) or 1.0
        tmp = out.parent / f".tmp-{out.name}-{uuid.uuid4().hex[:8]}"
        try:
            (tmp / "image").mkdir(parents=True)
            (tmp / "audio").mkdir()
            for split in ("train", "test"):
                w = NpyWriter(tmp / "image" / f"{split}_data.npy", (len(labels[split]), 28 * 28))
                for i in range(0, len(labels[split]), CHUNK):
                    w.write(pca_degrade(images[split][i : i + CHUNK], mean, basis))
                w.close()
                np.save(tmp / f"{split}_labels.npy", labels[split].astype(np.int64))
            writers = {s: NpyWriter(tmp / "audio" / f"{s}_data.npy", (len(labels[s]), SIZE, SIZE)) for s in labels}
            for split, chunk in spectrogram_chunks(("train", "test"), bar):
                writers[split].write(np.clip(chunk / top * 255.0, 0, 255))
            for w in writers.values():
                w.close()
            info = {
                "recreated_by": "fuselab-prepare avmnist",
                "builder_version": 2,
                "seed": seed,
                "snr_db": list(snr_db),
                "pca_components": k,
                "audio_scale": top,
                "train": int(len(train_y)),
                "test": int(len(test_y)),
                "mnist": str(mnist),
                "fsdd": str(fsdd),
                "differences": "FSDD speech instead of TIDIGITS, white noise instead of ESC-50",
            }
            (tmp / "provenance.json").write_text(json.dumps(info, indent=1))
            out.parent.mkdir(parents=True, exist_ok=True)
            if out.exists():
                out.rmdir()  # empty, checked above
            os.rename(tmp, out)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    log.info("AV-MNIST recreated in %s (%d PCA components kept)", out, k)
    return info
