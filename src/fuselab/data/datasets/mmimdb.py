"""MM-IMDb (Arevalo et al. 2017) in the hdf5 layout MultiBench reads (``multimodal_imdb.hdf5``):

    features      (N, 300)   text: averaged word2vec of the plot
    vgg_features  (N, 4096)  image: VGG-16 features of the poster
    images        (N, 3, H, W) the posters themselves (optional)
    genres        (N, 23)    multilabel targets

Splits are index ranges: train [0, 15552), val [15552, 18160), test [18160, 25959).
``image_source``: ``vgg`` (a vector modality) or ``images`` (an image modality, pixels / 255).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import numpy as np

from fuselab.data.datamodule import PairedDataModule, PreparedData
from fuselab.data.files import require_file
from fuselab.data.sources import content_stamp
from fuselab.data.specs import ModalitySpec, TargetSpec
from fuselab.errors import ConfigError

GENRES = (
    "drama",
    "comedy",
    "romance",
    "thriller",
    "crime",
    "action",
    "adventure",
    "horror",
    "documentary",
    "mystery",
    "sci-fi",
    "fantasy",
    "family",
    "biography",
    "war",
    "history",
    "animation",
    "musical",
    "music",
    "western",
    "sport",
    "short",
    "film-noir",
)
FIX = "Set data.path (or export FUSELAB_MMIMDB) to MultiBench's multimodal_imdb.hdf5."
CHUNK = 2048


class MMIMDbDataModule(PairedDataModule):
    name = "mmimdb"

    def __init__(
        self,
        path: str,
        image_source: str = "vgg",
        split_ends: tuple[int, int, int] = (15552, 18160, 25959),
        **loader_kwargs: Any,
    ) -> None:
        if image_source not in ("vgg", "images"):
            raise ConfigError(f"data.image_source={image_source!r} is not one of ['vgg', 'images']")
        if not path:
            raise ConfigError(f"data.path is not set. {FIX}")
        self.path = Path(path).expanduser().resolve()
        self.image_source = image_source
        self.split_ends = tuple(int(v) for v in split_ends)
        if not 0 < self.split_ends[0] < self.split_ends[1] < self.split_ends[2]:
            raise ConfigError(f"data.split_ends={list(split_ends)} must be increasing [train_end, val_end, test_end]")
        super().__init__(**loader_kwargs)

    def modality_names(self) -> list[str]:
        return ["text", "image"]

    def fingerprint(self) -> dict[str, Any]:
        p = require_file(self.path, "data=mmimdb", FIX)
        return {
            "version": 1,
            "path": str(p),
            "content": content_stamp(p, self.cache_dir),
            "image_source": self.image_source,
            "split_ends": list(self.split_ends),
        }

    def build(self, scratch: Path) -> PreparedData:
        import h5py

        path = require_file(self.path, "data=mmimdb", FIX)
        image_key = "vgg_features" if self.image_source == "vgg" else "images"
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise ConfigError(f"data=mmimdb: {path} cannot be opened as hdf5 (truncated or corrupt?): {exc}") from exc
        with f:
            missing = [k for k in ("features", image_key, "genres") if k not in f]
            if missing:
                raise ConfigError(f"data=mmimdb: {path} has no dataset(s) {missing}; it has {sorted(f.keys())}")
            text, image, genres = f["features"], f[image_key], f["genres"]
            expect = {"features": (300,), "genres": (23,)} | (
                {"vgg_features": (4096,)} if image_key == "vgg_features" else {}
            )
            for key, tail in expect.items():
                if f[key].shape[1:] != tail:
                    raise ConfigError(f"data=mmimdb: {path}:{key} has shape {f[key].shape}, expected (N, {tail[0]})")
            if image_key == "images" and len(image.shape) != 4:
                raise ConfigError(f"data=mmimdb: {path}:images has shape {image.shape}, expected (N, C, H, W)")
            n = min(len(text), len(image), len(genres))
            if n < self.split_ends[2]:
                raise ConfigError(
                    f"data=mmimdb: {path} has {n} samples, the splits need {self.split_ends[2]} "
                    "(set data.split_ends for a smaller file)"
                )
            image_spec = (
                ModalitySpec("image", "vector", (4096,))
                if image_key == "vgg_features"
                else ModalitySpec("image", "image", tuple(image.shape[1:]))
            )
            img_feature = (
                datasets.Sequence(datasets.Value("float32"), length=4096)
                if image_key == "vgg_features"
                else datasets.Array3D(shape=tuple(image.shape[1:]), dtype="float32")
            )
            features = datasets.Features(
                {
                    "text": datasets.Sequence(datasets.Value("float32"), length=300),
                    "image": img_feature,
                    "label": datasets.Sequence(datasets.Value("float32"), length=23),
                }
            )
            bounds = {
                "train": (0, self.split_ends[0]),
                "val": (self.split_ends[0], self.split_ends[1]),
                "test": (self.split_ends[1], self.split_ends[2]),
            }
            out = {}
            for split, (lo, hi) in bounds.items():
                chunks = []
                for start in range(lo, hi, CHUNK):
                    sl = slice(start, min(start + CHUNK, hi))
                    img = np.asarray(image[sl], dtype=np.float32)
                    if image_key == "images":
                        img = img / 255.0
                    chunks.append(
                        datasets.Dataset.from_dict(
                            {
                                "text": np.asarray(text[sl], dtype=np.float32),
                                "image": img,
                                "label": np.asarray(genres[sl], dtype=np.float32),
                            },
                            features=features,
                        )
                    )
                out[split] = datasets.concatenate_datasets(chunks)
        specs = {"text": ModalitySpec("text", "vector", (300,)), "image": image_spec}
        return PreparedData(datasets.DatasetDict(out), specs, TargetSpec("multilabel", 23, GENRES))
