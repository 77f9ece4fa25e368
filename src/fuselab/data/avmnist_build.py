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

import gzip
import json
import logging
import os
import shutil
import struct
import uuid
from pathlib import Path

import numpy as np

from fuselab.errors import ConfigError

log = logging.getLogger(__name__)

N_FFT = 222  # 112 frequency bins
HOP = 32
SIZE = 112


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


def pca_degrade(train: np.ndarray, images: list[np.ndarray], keep_energy: float = 0.25) -> tuple[list[np.ndarray], int]:
    """Project onto the leading components that hold ``keep_energy`` of the train variance."""
    x = train.reshape(len(train), -1).astype(np.float64)
    mean = x.mean(0)
    cov = np.cov(x - mean, rowvar=False)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    k = int(np.searchsorted(np.cumsum(values) / values.sum(), keep_energy) + 1)
    basis = vectors[:, :k]
    out = []
    for imgs in images:
        flat = imgs.reshape(len(imgs), -1).astype(np.float64) - mean
        out.append(np.clip(flat @ basis @ basis.T + mean, 0, 255).astype(np.float32))
    return out, k


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


def spectrogram(wave: np.ndarray) -> np.ndarray:
    """(112 frames, 112 bins) log magnitude, frames resampled to 112 over the recording."""
    if len(wave) < N_FFT:
        wave = np.pad(wave, (0, N_FFT - len(wave)))
    frames = 1 + (len(wave) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(frames)[:, None]
    spec = np.log1p(np.abs(np.fft.rfft(wave[idx] * np.hanning(N_FFT), axis=1)))[:, :SIZE]
    positions = np.linspace(0, frames - 1, SIZE)
    lo = np.floor(positions).astype(int)
    hi = np.minimum(lo + 1, frames - 1)
    w = (positions - lo)[:, None]
    return ((1 - w) * spec[lo] + w * spec[hi]).astype(np.float32)


def read_wav(path: Path) -> np.ndarray:
    try:
        import soundfile as sf
    except ImportError as exc:
        raise ConfigError("reading wav files needs the audio extra: pip install 'fuselab[audio]' (soundfile)") from exc

    try:
        data, _ = sf.read(str(path), dtype="float32", always_2d=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported with its name
        raise ConfigError(f"FSDD: {path} cannot be read as a wav file: {exc}") from exc
    return data if data.ndim == 1 else data.mean(1)


def build_avmnist(
    mnist: str | Path,
    fsdd: str | Path,
    out: str | Path,
    seed: int = 0,
    snr_db: tuple[float, float] = (0.0, 20.0),
    train_limit: int | None = None,
    test_limit: int | None = None,
) -> dict:
    mnist, fsdd, out = Path(mnist).expanduser(), Path(fsdd).expanduser(), Path(out).expanduser()
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} exists and is not empty; nothing is overwritten: choose a new folder")
    rng = np.random.default_rng(seed)
    (train_x, train_y), (test_x, test_y) = find_mnist(mnist, "train"), find_mnist(mnist, "test")
    if train_limit:
        train_x, train_y = train_x[:train_limit], train_y[:train_limit]
    if test_limit:
        test_x, test_y = test_x[:test_limit], test_y[:test_limit]
    (train_img, test_img), k = pca_degrade(find_mnist(mnist, "train")[0], [train_x, test_x])
    recordings = fsdd_recordings(fsdd)
    waves = {s: {d: [read_wav(p) for p in files] for d, files in by.items()} for s, by in recordings.items()}

    def audio_for(labels: np.ndarray, split: str) -> np.ndarray:
        out_spec = np.empty((len(labels), SIZE, SIZE), dtype=np.float32)
        for i, d in enumerate(labels):
            pool = waves[split][int(d)]
            wave = pool[int(rng.integers(len(pool)))]
            snr = rng.uniform(*snr_db)
            noise = rng.standard_normal(len(wave)).astype(np.float32)
            noise *= np.sqrt(np.mean(wave**2) / (10 ** (snr / 10)) / max(np.mean(noise**2), 1e-12))
            out_spec[i] = spectrogram(wave + noise)
        return out_spec

    train_audio, test_audio = audio_for(train_y, "train"), audio_for(test_y, "test")
    top = float(np.percentile(train_audio, 99.9)) or 1.0  # scale fixed on train
    tmp = out.parent / f".tmp-{out.name}-{uuid.uuid4().hex[:8]}"
    try:
        (tmp / "image").mkdir(parents=True)
        (tmp / "audio").mkdir()
        for split, img, aud, y in (("train", train_img, train_audio, train_y), ("test", test_img, test_audio, test_y)):
            np.save(tmp / "image" / f"{split}_data.npy", img)
            np.save(tmp / "audio" / f"{split}_data.npy", np.clip(aud / top * 255.0, 0, 255).astype(np.float32))
            np.save(tmp / f"{split}_labels.npy", y.astype(np.int64))
        info = {
            "recreated_by": "fuselab-prepare avmnist",
            "seed": seed,
            "snr_db": list(snr_db),
            "pca_components": k,
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
