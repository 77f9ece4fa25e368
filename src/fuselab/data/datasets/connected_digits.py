"""Audio-visual connected digits, built from MNIST and the Free Spoken Digit Dataset (FSDD).

Each sample says and shows ``min_digits``-``max_digits`` digits; the target is their words
("three one four"):

  ``audio``  one FSDD speaker saying the digits in a row (recordings trimmed of silence, joined
             by 50-200 ms pauses, white noise at a random SNR in ``snr_db``), as log-mel frames
             (32 ms hop, ``n_mels`` bands)
  ``image``  the MNIST images of the digits side by side in a strip (each downsampled to
             ``digit_size``), empty slots black; pixels in [0, 1]

Complementary corruption (``complementary=true``): every sample of two or more digits hides one
digit in each modality, at two different positions. The image's digit is scribbled over
(uniform noise), the audio's is replaced by a noise burst of the same length and loudness: a
digit hidden in the image is audible, and the reverse. Each modality alone must then err on
about one digit per sample; a model that fuses both can get every digit: the known answer.

Splits: ``official`` keeps FSDD's split (recordings 0-4 of each speaker and digit are test;
5-9 validation, 10-49 train) and MNIST's (test images for the test split, the last 10,000 train
images for validation). ``speakers`` holds speakers out: ``test_speaker`` only in test,
``val_speaker`` only in validation, the other four in train.

Build it once (cached like every dataset): ``fuselab-prepare connected_digits --mnist DIR
--fsdd DIR``, then train with ``data=connected_digits data.mnist_dir=DIR data.fsdd_dir=DIR``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from fuselab.data.chunks import rows_to_dataset
from fuselab.data.datamodule import PairedDataModule, PreparedData
from fuselab.data.datasets.synthetic_generation import digit_vocabulary, hidden_positions
from fuselab.data.readers.audio_features import log_mel, trim_silence
from fuselab.data.readers.mnist_fsdd import (
    TAKES,
    find_mnist,
    fsdd_index,
    read_wav,
    resize_digits,
    source_dirs,
    source_fingerprint,
)
from fuselab.data.specs import SPECIAL_TOKENS, ModalitySpec, TargetSpec
from fuselab.errors import ConfigError

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
SPLITS = ("official", "speakers")


class ConnectedDigitsDataModule(PairedDataModule):
    name = "connected_digits"

    def __init__(
        self,
        mnist_dir: str | None = None,
        fsdd_dir: str | None = None,
        train_size: int = 20000,
        val_size: int = 2000,
        test_size: int = 2000,
        min_digits: int = 1,
        max_digits: int = 5,
        split: str = "official",
        test_speaker: str = "theo",
        val_speaker: str = "lucas",
        complementary: bool = True,
        snr_db: tuple[float, float] = (10.0, 30.0),
        digit_size: int = 14,
        n_mels: int = 40,
        seed: int = 0,
        **loader_kwargs: Any,
    ) -> None:
        self.mnist_dir, self.fsdd_dir = source_dirs("connected_digits", mnist_dir, fsdd_dir)
        if split not in SPLITS:
            raise ConfigError(f"data.split={split!r} is not one of {list(SPLITS)}")
        if not 1 <= int(min_digits) <= int(max_digits):
            raise ConfigError(f"data.min_digits={min_digits}, data.max_digits={max_digits}: need 1 <= min <= max")
        if min(int(train_size), int(val_size), int(test_size)) < 1:
            raise ConfigError("data.train_size, data.val_size and data.test_size must be >= 1")
        if split == "speakers" and test_speaker == val_speaker:
            raise ConfigError("data.test_speaker and data.val_speaker must differ")
        if not 7 <= int(digit_size) <= 28:
            raise ConfigError(f"data.digit_size={digit_size} must be in [7, 28]")
        lo, hi = (float(v) for v in snr_db)
        self.params = dict(
            train_size=int(train_size),
            val_size=int(val_size),
            test_size=int(test_size),
            min_digits=int(min_digits),
            max_digits=int(max_digits),
            split=split,
            test_speaker=str(test_speaker),
            val_speaker=str(val_speaker),
            complementary=bool(complementary),
            snr_db=[lo, hi],
            digit_size=int(digit_size),
            n_mels=int(n_mels),
            seed=int(seed),
        )
        super().__init__(**loader_kwargs)

    def modality_names(self) -> list[str]:
        return ["audio", "image"]

    def fingerprint(self) -> dict[str, Any]:
        return source_fingerprint(self.mnist_dir, self.fsdd_dir, self.params, self.cache_dir)

    # ---- building ----------------------------------------------------------------------------
    def _recordings(self) -> dict[str, dict[int, list[tuple[str, Path]]]]:
        """Per split, per digit: (speaker, path) of the recordings that split may use."""
        p = self.params
        out: dict[str, dict[int, list[tuple[str, Path]]]] = {s: {d: [] for d in range(10)} for s in TAKES}
        speakers = sorted({s for _, s, _, _ in fsdd_index(self.fsdd_dir)})
        if p["split"] == "speakers":
            missing = [s for s in (p["test_speaker"], p["val_speaker"]) if s not in speakers]
            if missing:
                raise ConfigError(f"data.test_speaker/val_speaker {missing} are not FSDD speakers; it has {speakers}")
        for digit, speaker, take, path in fsdd_index(self.fsdd_dir):
            if p["split"] == "official":
                split = next(s for s, takes in TAKES.items() if take in takes) if take < 50 else "train"
            else:
                split = {p["test_speaker"]: "test", p["val_speaker"]: "val"}.get(speaker, "train")
            out[split][digit].append((speaker, path))
        for split, by_digit in out.items():
            empty = [d for d, files in by_digit.items() if not files]
            if empty:
                raise ConfigError(f"FSDD: no {split} recordings of digits {empty} in {self.fsdd_dir}")
        return out

    def _digits(self) -> dict[str, dict[int, np.ndarray]]:
        """Per split, per digit: MNIST images (N, s, s) in [0, 1], downsampled to digit_size."""
        (train_x, train_y), (test_x, test_y) = find_mnist(self.mnist_dir, "train"), find_mnist(self.mnist_dir, "test")
        pools = {"train": (train_x[:-10000], train_y[:-10000]), "val": (train_x[-10000:], train_y[-10000:])}
        pools["test"] = (test_x, test_y)
        s = self.params["digit_size"]
        out = {}
        for split, (x, y) in pools.items():
            small = resize_digits(x.astype(np.float32) / 255.0, s)
            out[split] = {d: small[y == d] for d in range(10)}
        return out

    def build(self, scratch: Path) -> PreparedData:
        p = self.params
        rng = np.random.default_rng(p["seed"])
        recordings, digits = self._recordings(), self._digits()
        waves: dict[Path, np.ndarray] = {}
        for by_digit in recordings.values():
            for files in by_digit.values():
                for _, path in files:
                    waves[path] = trim_silence(_read(path))
        s, slots = p["digit_size"], p["max_digits"]
        features = datasets.Features(
            {
                "audio": datasets.Array2D(shape=(None, p["n_mels"]), dtype="float32"),
                "image": datasets.Array3D(shape=(1, s, s * slots), dtype="float32"),
                "label": datasets.List(datasets.Value("int32")),
                "speaker": datasets.Value("string"),
                "hidden_image": datasets.Value("int32"),
                "hidden_audio": datasets.Value("int32"),
            }
        )
        splits = {}
        for split in ("train", "val", "test"):
            rows = (self._sample(rng, recordings[split], digits[split], waves) for _ in range(p[f"{split}_size"]))
            splits[split] = rows_to_dataset(rows, features, scratch)
            log.info("connected_digits: %s split built (%d samples)", split, len(splits[split]))
        specs = {
            "audio": ModalitySpec("audio", "sequence", (None, p["n_mels"])),
            "image": ModalitySpec("image", "image", (1, s, s * slots)),
        }
        vocab = digit_vocabulary(10)
        notes = {"sources": {"mnist": str(self.mnist_dir), "fsdd": str(self.fsdd_dir)}, "recordings": len(waves)}
        return PreparedData(
            datasets.DatasetDict(splits), specs, TargetSpec("generation", len(vocab), vocabulary=vocab), notes=notes
        )

    def _sample(
        self,
        rng: np.random.Generator,
        recordings: dict[int, list[tuple[str, Path]]],
        digits: dict[int, np.ndarray],
        waves: dict[Path, np.ndarray],
    ) -> dict[str, Any]:
        p = self.params
        s = p["digit_size"]
        n = int(rng.integers(p["min_digits"], p["max_digits"] + 1))
        # one speaker says every digit of a sample, as in a recording of connected digits
        speakers = sorted({spk for files in recordings.values() for spk, _ in files})
        speaker = speakers[int(rng.integers(len(speakers)))]
        labels = rng.integers(0, 10, size=n)
        hid_img, hid_aud = hidden_positions(rng, n) if p["complementary"] else (-1, -1)
        image = np.zeros((1, s, s * p["max_digits"]), dtype=np.float32)
        pieces = [np.zeros(int(rng.integers(400, 1600)), dtype=np.float32)]
        for i, d in enumerate(labels):
            pool = digits[int(d)]
            image[0, :, i * s : (i + 1) * s] = (
                rng.random((s, s)) if i == hid_img else pool[int(rng.integers(len(pool)))]
            )
            own = [path for spk, path in recordings[int(d)] if spk == speaker] or [q for _, q in recordings[int(d)]]
            wave = waves[own[int(rng.integers(len(own)))]]
            if i == hid_aud:  # a noise burst as loud as the word it replaces
                wave = rng.standard_normal(len(wave)).astype(np.float32) * float(np.sqrt(np.mean(wave**2)) + 1e-4)
            pieces += [wave, np.zeros(int(rng.integers(400, 1600)), dtype=np.float32)]
        speech = np.concatenate(pieces)
        snr = rng.uniform(*p["snr_db"])
        power = float(np.mean(speech**2)) or 1e-8
        speech = speech + rng.standard_normal(len(speech)).astype(np.float32) * np.sqrt(power / 10 ** (snr / 10))
        return {
            "audio": log_mel(speech, SAMPLE_RATE, n_mels=p["n_mels"]),
            "image": image,
            "label": (labels + len(SPECIAL_TOKENS)).astype(np.int32),
            "speaker": speaker,
            "hidden_image": hid_img,
            "hidden_audio": hid_aud,
        }


def _read(path: Path) -> np.ndarray:
    wave = read_wav(path)  # checks that soundfile is installed
    import soundfile as sf

    rate = sf.info(str(path)).samplerate
    if rate != SAMPLE_RATE:
        raise ConfigError(f"FSDD: {path} is sampled at {rate} Hz; connected digits expects {SAMPLE_RATE} Hz")
    return wave.astype(np.float32)
