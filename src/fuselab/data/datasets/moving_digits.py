"""Moving digits with their spoken names, built from MNIST and FSDD (``data=moving_digits``).

Each sample is one digit (the label, 10 classes), seen and heard:

- ``video``: T frames (``min_frames``-``max_frames``) of a ``canvas`` x ``canvas`` grey picture in
  which an MNIST digit (downsampled to ``digit_size``) moves in a straight line from a random
  start at a random speed, bouncing off the edges, with Gaussian noise (``noise``) on every
  frame; in each frame the digit is hidden with probability ``occlusion`` (the frame is noise
  only), so a single frame may show nothing;
- ``audio``: an FSDD recording of the same digit with white noise at ``snr_db``, as log-mel
  frames (librosa) averaged into one step per video frame, so the two modalities are aligned
  (early fusion can join them step by step).

Splits: FSDD recordings 0-4 of each speaker and digit are test, 5-9 validation, 10-49 train;
MNIST's last 10,000 training images are validation, its test images test. Built once into the
cache (``fuselab-prepare moving_digits --mnist DIR --fsdd DIR``); deterministic for a seed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from fuselab.data.chunks import rows_to_dataset
from fuselab.data.datamodule import PairedDataModule, PreparedData
from fuselab.data.readers import mnist_fsdd as digits
from fuselab.data.specs import ModalitySpec, TargetSpec
from fuselab.errors import ConfigError

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000


def trajectory(rng: np.random.Generator, frames: int, room: int) -> np.ndarray:
    """(frames, 2) top-left corners of a digit moving straight across ``room`` positions per axis,
    bouncing off the edges."""
    pos = rng.uniform(0, room, size=2)
    speed = rng.uniform(1.0, 3.0, size=2) * rng.choice([-1.0, 1.0], size=2)
    out = np.empty((frames, 2), dtype=np.int64)
    for t in range(frames):
        out[t] = np.round(pos).astype(np.int64)
        pos = pos + speed
        for k in range(2):  # reflect at the walls
            if pos[k] < 0 or pos[k] > room:
                speed[k] = -speed[k]
                pos[k] = 2 * np.clip(pos[k], 0, room) - pos[k]
    return np.clip(out, 0, room)


def steps_per_frame(frames: np.ndarray, count: int) -> np.ndarray:
    """(F, D) feature frames averaged into ``count`` equal windows: (count, D)."""
    edges = np.linspace(0, len(frames), count + 1)
    out = np.empty((count, frames.shape[1]), dtype=np.float32)
    for t in range(count):
        lo = int(np.floor(edges[t]))
        hi = max(int(np.floor(edges[t + 1])), lo + 1)
        out[t] = frames[min(lo, len(frames) - 1) : min(hi, len(frames))].mean(0)
    return out


class MovingDigitsDataModule(PairedDataModule):
    name = "moving_digits"

    def __init__(
        self,
        mnist_dir: str | None = None,
        fsdd_dir: str | None = None,
        train_size: int = 3000,
        val_size: int = 500,
        test_size: int = 1000,
        min_frames: int = 6,
        max_frames: int = 12,
        canvas: int = 32,
        digit_size: int = 20,
        noise: float = 0.2,
        occlusion: float = 0.3,
        snr_db: tuple[float, float] = (-5.0, 5.0),
        n_mels: int = 40,
        seed: int = 0,
        **loader_kwargs: Any,
    ) -> None:
        self.mnist_dir, self.fsdd_dir = digits.source_dirs("moving_digits", mnist_dir, fsdd_dir)
        if not 1 <= int(min_frames) <= int(max_frames):
            raise ConfigError(f"data.min_frames={min_frames}, data.max_frames={max_frames}: need 1 <= min <= max")
        if not 7 <= int(digit_size) <= int(canvas):
            raise ConfigError(f"data.digit_size={digit_size} must be in [7, data.canvas={canvas}]")
        if min(int(train_size), int(val_size), int(test_size)) < 1:
            raise ConfigError("data.train_size, data.val_size and data.test_size must be >= 1")
        if not 0 <= float(occlusion) < 1:
            raise ConfigError(f"data.occlusion={occlusion} must be in [0, 1)")
        lo, hi = (float(v) for v in snr_db)
        self.params = dict(
            train_size=int(train_size),
            val_size=int(val_size),
            test_size=int(test_size),
            min_frames=int(min_frames),
            max_frames=int(max_frames),
            canvas=int(canvas),
            digit_size=int(digit_size),
            noise=float(noise),
            occlusion=float(occlusion),
            snr_db=[lo, hi],
            n_mels=int(n_mels),
            seed=int(seed),
        )
        super().__init__(**loader_kwargs)

    def modality_names(self) -> list[str]:
        return ["video", "audio"]

    def fingerprint(self) -> dict[str, Any]:
        return digits.source_fingerprint(self.mnist_dir, self.fsdd_dir, self.params, self.cache_dir)

    def build(self, scratch: Path) -> PreparedData:
        p = self.params
        rng = np.random.default_rng(p["seed"])
        recordings: dict[str, dict[int, list[Path]]] = {s: {d: [] for d in range(10)} for s in digits.TAKES}
        for digit, _, take, path in digits.fsdd_index(self.fsdd_dir):
            recordings[next((s for s, t in digits.TAKES.items() if take in t), "train")][digit].append(path)
        waves = {path: digits.read_wav(path) for by in recordings.values() for files in by.values() for path in files}
        (train_x, train_y) = digits.find_mnist(self.mnist_dir, "train")
        (test_x, test_y) = digits.find_mnist(self.mnist_dir, "test")
        pools = {"train": (train_x[:-10000], train_y[:-10000]), "val": (train_x[-10000:], train_y[-10000:])}
        pools["test"] = (test_x, test_y)
        c = p["canvas"]
        feats = datasets.Features(
            {
                "video": datasets.Array2D(shape=(None, c * c), dtype="float32"),
                "audio": datasets.Array2D(shape=(None, p["n_mels"]), dtype="float32"),
                "label": datasets.Value("int64"),
            }
        )
        splits = {}
        for split in ("train", "val", "test"):
            rows = (self._sample(rng, pools[split], recordings[split], waves) for _ in range(p[f"{split}_size"]))
            splits[split] = rows_to_dataset(rows, feats, scratch)
            log.info("moving_digits: %s split built (%d samples)", split, len(splits[split]))
        specs = {
            "video": ModalitySpec("video", "video", (None, 1, c, c)),
            "audio": ModalitySpec("audio", "sequence", (None, p["n_mels"])),
        }
        target = TargetSpec("multiclass", 10, class_names=tuple(str(d) for d in range(10)))
        notes = {"sources": {"mnist": str(self.mnist_dir), "fsdd": str(self.fsdd_dir)}, "recordings": len(waves)}
        return PreparedData(datasets.DatasetDict(splits), specs, target, aligned=True, notes=notes)

    def _sample(
        self,
        rng: np.random.Generator,
        pool: tuple[np.ndarray, np.ndarray],
        recordings: dict[int, list[Path]],
        waves: dict[Path, np.ndarray],
    ) -> dict[str, Any]:
        from fuselab.data.readers.audio_features import features

        p = self.params
        c, s = p["canvas"], p["digit_size"]
        x, y = pool
        i = int(rng.integers(len(y)))
        digit = int(y[i])
        small = digits.resize_digits(x[i : i + 1].astype(np.float32) / 255.0, s)[0]
        frames = int(rng.integers(p["min_frames"], p["max_frames"] + 1))
        video = rng.normal(0.0, p["noise"], size=(frames, c, c)).astype(np.float32)
        for t, (top, left) in enumerate(trajectory(rng, frames, c - s)):
            if rng.random() >= p["occlusion"]:
                video[t, top : top + s, left : left + s] += small
        files = recordings[digit]
        wave = waves[files[int(rng.integers(len(files)))]]
        snr = rng.uniform(*p["snr_db"])
        noise = rng.standard_normal(len(wave)).astype(np.float32)
        wave = wave + noise * np.sqrt(np.mean(wave**2) / 10 ** (snr / 10) / max(np.mean(noise**2), 1e-12))
        mel = features(wave, SAMPLE_RATE, "log_mel", sample_rate=None, n_fft=256, hop=80, n_mels=p["n_mels"])
        return {
            "video": np.clip(video, -1.0, 2.0).reshape(frames, c * c),
            "audio": steps_per_frame(mel, frames),
            "label": digit,
        }
