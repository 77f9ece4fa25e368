"""AV-MNIST (Vielzeuf et al. 2018) in MultiBench's layout::

    <data_dir>/image/train_data.npy  (60000, 784) or (60000, 28, 28), pixel values 0-255
    <data_dir>/image/test_data.npy   (10000, ...)
    <data_dir>/audio/train_data.npy  (60000, 112, 112) spectrograms, values 0-255
    <data_dir>/audio/test_data.npy
    <data_dir>/train_labels.npy, <data_dir>/test_labels.npy   digits 0-9

Validation is the last ``val_size`` (5,000) samples of train, as in MultiBench. ``audio_as``:
``sequence`` reads the spectrogram as 112 time steps of 112 features (for the recurrent
encoder), ``image`` as a 1x112x112 image (for the CNN). ``fuselab-prepare avmnist`` recreates
the data set from MNIST and FSDD in this layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import numpy as np

from fuselab.data.datamodule import PairedDataModule, PreparedData
from fuselab.data.files import load_npy
from fuselab.data.sources import content_stamp
from fuselab.data.specs import ModalitySpec, TargetSpec
from fuselab.errors import ConfigError

FIX = (
    "Point data.data_dir (or export FUSELAB_AVMNIST) at MultiBench's avmnist folder, or create one with "
    "`fuselab-prepare avmnist`."
)
CHUNK = 5000


class AVMNISTDataModule(PairedDataModule):
    name = "avmnist"

    def __init__(self, data_dir: str, audio_as: str = "sequence", val_size: int = 5000, **loader_kwargs: Any) -> None:
        if audio_as not in ("sequence", "image"):
            raise ConfigError(f"data.audio_as={audio_as!r} is not one of ['sequence', 'image']")
        if not data_dir:
            raise ConfigError(f"data.data_dir is not set. {FIX}")
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.audio_as = audio_as
        self.val_size = int(val_size)
        super().__init__(**loader_kwargs)

    def modality_names(self) -> list[str]:
        return ["image", "audio"]

    def _specs(self) -> dict[str, ModalitySpec]:
        audio = (
            ModalitySpec("audio", "sequence", (112, 112))
            if self.audio_as == "sequence"
            else ModalitySpec("audio", "image", (1, 112, 112))
        )
        return {"image": ModalitySpec("image", "image", (1, 28, 28)), "audio": audio}

    def files(self) -> dict[str, Path]:
        d = self.data_dir
        return {f"{m}_{s}": d / m / f"{s}_data.npy" for m in ("image", "audio") for s in ("train", "test")} | {
            f"labels_{s}": d / f"{s}_labels.npy" for s in ("train", "test")
        }

    def fingerprint(self) -> dict[str, Any]:
        return {
            "version": 1,
            "data_dir": str(self.data_dir),
            "audio_as": self.audio_as,
            "val_size": self.val_size,
            "files": {k: [p.name, *content_stamp(p, self.cache_dir)[1:]] for k, p in self.files().items()},
        }

    def _load(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = self.files()
        labels = load_npy(f[f"labels_{split}"], "AV-MNIST labels", FIX)
        if labels.ndim != 1:
            raise ConfigError(f"AV-MNIST labels: {f[f'labels_{split}']} has shape {labels.shape}, expected (N,)")
        image = load_npy(f[f"image_{split}"], "AV-MNIST image", FIX, shapes=((784,), (28, 28)), rows=len(labels))
        audio = load_npy(f[f"audio_{split}"], "AV-MNIST audio", FIX, shapes=((112, 112),), rows=len(labels))
        return image, audio, labels

    def build(self, scratch: Path) -> PreparedData:
        audio_feature = (
            datasets.Array2D(shape=(112, 112), dtype="float16")
            if self.audio_as == "sequence"
            else datasets.Array3D(shape=(1, 112, 112), dtype="float16")
        )
        features = datasets.Features(
            {
                "image": datasets.Array3D(shape=(1, 28, 28), dtype="float32"),
                "audio": audio_feature,
                "label": datasets.ClassLabel(names=[str(i) for i in range(10)]),
            }
        )
        train_image, train_audio, train_labels = self._load("train")
        test = self._load("test")
        if self.val_size >= len(train_labels):
            raise ConfigError(f"data.val_size={self.val_size} leaves no training samples out of {len(train_labels)}")
        cut = len(train_labels) - self.val_size
        parts = {
            "train": (train_image[:cut], train_audio[:cut], train_labels[:cut]),
            "val": (train_image[cut:], train_audio[cut:], train_labels[cut:]),
            "test": test,
        }
        splits = datasets.DatasetDict({s: self._table(*arrays, features) for s, arrays in parts.items()})
        return PreparedData(splits, self._specs(), TargetSpec("multiclass", 10, tuple(str(i) for i in range(10))))

    def _table(self, image: np.ndarray, audio: np.ndarray, labels: np.ndarray, features: datasets.Features):
        chunks = []
        for start in range(0, len(labels), CHUNK):
            sl = slice(start, start + CHUNK)
            img = (np.asarray(image[sl], dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)
            aud = np.asarray(audio[sl], dtype=np.float32) / 255.0
            if self.audio_as == "image":
                aud = aud[:, None]
            chunks.append(
                datasets.Dataset.from_dict(
                    {"image": img, "audio": aud.astype(np.float16), "label": np.asarray(labels[sl], dtype=np.int64)},
                    features=features,
                )
            )
        return datasets.concatenate_datasets(chunks)
