"""The embedded generation benchmark: transcribe a sequence of symbols shown in two modalities,
each of which hides a different one of them. Generated in seconds, with a known answer.

Each sample holds ``length`` symbols (digit words ``zero`` .. ``nine``, the first
``num_symbols``), drawn uniformly with ``length`` in [min_length, max_length]:

  ``audio``  float sequence (T, audio_dim): each symbol is a segment of 2-4 frames of its
             prototype (a random +-1 pattern) plus noise, separated by 1-3 frames of noise
  ``image``  (1, S, S * max_length) strip: symbol i's prototype patch (smooth, unit variance)
             in slot i, plus noise everywhere; slots after the last symbol hold noise only

With ``complementary=true`` (the default) every sample of two or more symbols hides one symbol
in each modality, at two different positions: in the audio its segment becomes a burst of loud
noise, in the image its patch becomes a different random pattern of unit variance; either way a
model that has only that modality knows a symbol is there but not which. So each modality alone
must err on about one symbol of every sample of length >= 2 (a word error rate near
0.8 / mean length, about 0.27 for lengths 1-5), while a model that fuses both can transcribe
every symbol: the known answer.

Everything is drawn from ``numpy.random.default_rng(seed)``: the same settings give the same data.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from fuselab.data.datamodule import PairedDataModule, PreparedData
from fuselab.data.specs import SPECIAL_TOKENS, ModalitySpec, TargetSpec
from fuselab.errors import ConfigError

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def digit_vocabulary(n: int = 10) -> tuple[str, ...]:
    """The special tokens, then the first ``n`` digit words (id of digit d: 4 + d)."""
    return SPECIAL_TOKENS + DIGIT_WORDS[:n]


def hidden_positions(rng: np.random.Generator, length: int) -> tuple[int, int]:
    """(hidden in the image, hidden in the audio): two different positions, or (-1, -1) for a
    single symbol (nothing hidden)."""
    if length < 2:
        return -1, -1
    a, b = rng.choice(length, size=2, replace=False)
    return int(a), int(b)


class SyntheticGenerationDataModule(PairedDataModule):
    name = "synthetic_generation"

    def __init__(
        self,
        num_symbols: int = 10,
        min_length: int = 1,
        max_length: int = 5,
        train_size: int = 5000,
        val_size: int = 500,
        test_size: int = 1000,
        audio_dim: int = 16,
        image_size: int = 8,
        noise: float = 0.5,
        complementary: bool = True,
        seed: int = 0,
        **loader_kwargs: Any,
    ) -> None:
        if not 2 <= int(num_symbols) <= len(DIGIT_WORDS):
            raise ConfigError(f"data.num_symbols={num_symbols} must be in [2, 10]")
        if not 1 <= int(min_length) <= int(max_length):
            raise ConfigError(f"data.min_length={min_length} and max_length={max_length} need 1 <= min <= max")
        for key, value in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
            if int(value) < 1:
                raise ConfigError(f"data.{key}={value} must be >= 1")
        if int(audio_dim) < 2 or int(image_size) < 4 or float(noise) < 0:
            raise ConfigError("data.audio_dim must be >= 2, data.image_size >= 4 and data.noise >= 0")
        self.params = dict(
            num_symbols=int(num_symbols),
            min_length=int(min_length),
            max_length=int(max_length),
            train_size=int(train_size),
            val_size=int(val_size),
            test_size=int(test_size),
            audio_dim=int(audio_dim),
            image_size=int(image_size),
            noise=float(noise),
            complementary=bool(complementary),
            seed=int(seed),
        )
        super().__init__(**loader_kwargs)

    def modality_names(self) -> list[str]:
        return ["audio", "image"]

    def fingerprint(self) -> dict[str, Any]:
        return {"generator": _SOURCE_HASH, **self.params}

    def build(self, scratch: Path) -> PreparedData:
        p = self.params
        rng = np.random.default_rng(p["seed"])
        s, k = p["image_size"], p["num_symbols"]
        audio_protos = rng.choice([-1.0, 1.0], size=(k, p["audio_dim"])).astype(np.float32)
        patches = _smooth_patterns(rng, k, s)
        features = datasets.Features(
            {
                "audio": datasets.Array2D(shape=(None, p["audio_dim"]), dtype="float32"),
                "image": datasets.Array3D(shape=(1, s, s * p["max_length"]), dtype="float32"),
                "label": datasets.List(datasets.Value("int32")),
                "hidden_image": datasets.Value("int32"),
                "hidden_audio": datasets.Value("int32"),
            }
        )
        splits = {
            split: datasets.Dataset.from_dict(
                _generate(rng, p[f"{split}_size"], p, audio_protos, patches), features=features
            )
            for split in ("train", "val", "test")
        }
        specs = {
            "audio": ModalitySpec("audio", "sequence", (None, p["audio_dim"])),
            "image": ModalitySpec("image", "image", (1, s, s * p["max_length"])),
        }
        vocab = digit_vocabulary(k)
        target = TargetSpec("generation", len(vocab), vocabulary=vocab)
        return PreparedData(datasets.DatasetDict(splits), specs, target)


def _smooth_patterns(rng: np.random.Generator, n: int, s: int) -> np.ndarray:
    """``n`` smooth random (s, s) patterns of zero mean and unit variance."""
    yy, xx = np.meshgrid(np.linspace(0, np.pi, s), np.linspace(0, np.pi, s), indexing="ij")
    out = np.zeros((n, s, s), dtype=np.float32)
    for c in range(n):
        for _ in range(3):
            fy, fx = rng.integers(1, 4, size=2)
            out[c] += rng.normal() * np.cos(fy * yy + rng.uniform(0, np.pi)) * np.cos(fx * xx + rng.uniform(0, np.pi))
        out[c] = (out[c] - out[c].mean()) / (out[c].std() + 1e-6)
    return out


def _generate(
    rng: np.random.Generator, n: int, p: dict[str, Any], audio_protos: np.ndarray, patches: np.ndarray
) -> dict[str, Any]:
    s, noise, dim = p["image_size"], p["noise"], p["audio_dim"]
    audio, images, labels, hid_img, hid_aud = [], [], [], [], []
    for _ in range(n):
        length = int(rng.integers(p["min_length"], p["max_length"] + 1))
        symbols = rng.integers(0, p["num_symbols"], size=length)
        img_hidden, aud_hidden = hidden_positions(rng, length) if p["complementary"] else (-1, -1)
        image = noise * rng.standard_normal((1, s, s * p["max_length"])).astype(np.float32)
        frames = [noise * rng.standard_normal((int(rng.integers(1, 4)), dim))]
        for i, sym in enumerate(symbols):
            patch = _smooth_patterns(rng, 1, s)[0] if i == img_hidden else patches[sym]
            image[0, :, i * s : (i + 1) * s] += patch
            seg = noise * rng.standard_normal((int(rng.integers(2, 5)), dim))
            # a hidden symbol is masked by a loud noise burst of the same length (it is still
            # heard that a word was said, not which)
            seg = rng.standard_normal(seg.shape) * (1.0 + noise) if i == aud_hidden else seg + audio_protos[sym]
            frames += [seg, noise * rng.standard_normal((int(rng.integers(1, 4)), dim))]
        audio.append(np.concatenate(frames).astype(np.float32))
        images.append(image)
        labels.append((symbols + len(SPECIAL_TOKENS)).astype(np.int32))
        hid_img.append(img_hidden)
        hid_aud.append(aud_hidden)
    return {"audio": audio, "image": images, "label": labels, "hidden_image": hid_img, "hidden_audio": hid_aud}
