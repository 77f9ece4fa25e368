"""Image captioning from a folder in the Flickr8k or MS-COCO caption layout (nothing is
downloaded: point ``data.root`` at a copy on disk).

Layouts (``layout=auto`` finds which one ``root`` holds):

  flickr8k  ``captions.txt`` (CSV with a header ``image,caption``; Kaggle's copy) or
            ``Flickr8k.token.txt`` (``<image>#<n><TAB><caption>``; the original), images in
            ``Images/`` or ``Flicker8k_Dataset/`` (or ``root``). The split files
            ``Flickr_8k.{train,dev,test}Images.txt`` are used when present, otherwise images are
            split at random (``val_fraction``, ``test_fraction``, seeded).
  coco      ``annotations/captions_{train,val}2017.json`` with images in ``train2017/`` and
            ``val2017/``: val2017 is the test split, and ``val_fraction`` of train2017's images
            validate.

Captions are lowercased and split into words; the vocabulary is fitted on the train split only
(words seen at least ``min_count`` times; others become ``<unk>``). Training has one row per
(image, caption); validation and test one row per image, scored against all of its captions
(``references``; BLEU and CIDEr use them all, WER the first). Images are decoded with Pillow,
converted to RGB, resized to ``image_size`` squared and scaled to [0, 1]; the splits are
written in chunks, so memory stays bounded whatever the number of images. An unreadable image
stops the preparation with its path.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from fuselab.data.collate import REFERENCES_COLUMN
from fuselab.data.datamodule import PairedDataModule, PreparedData
from fuselab.data.sources import content_stamp
from fuselab.data.specs import SPECIAL_TOKENS, UNK_ID, ModalitySpec, TargetSpec
from fuselab.errors import ConfigError

LAYOUTS = ("auto", "flickr8k", "coco")
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

Captions = dict[str, list[str]]  # image path -> its captions


def words(caption: str) -> list[str]:
    return WORD.findall(caption.lower())


def fit_vocabulary(captions: list[str], min_count: int) -> tuple[str, ...]:
    """The special tokens, then every word seen at least ``min_count`` times, most frequent first."""
    counts = Counter(w for c in captions for w in words(c))
    kept = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    return SPECIAL_TOKENS + tuple(kept)


def detect_layout(root: Path) -> str:
    if (root / "captions.txt").is_file() or (root / "Flickr8k.token.txt").is_file():
        return "flickr8k"
    if (root / "annotations").is_dir() and list((root / "annotations").glob("captions_*.json")):
        return "coco"
    raise ConfigError(
        f"data.root={root} holds neither a Flickr8k layout (captions.txt or Flickr8k.token.txt) nor a COCO "
        "layout (annotations/captions_*.json); see fuselab/data/datasets/captions.py"
    )


def flickr8k_captions(root: Path) -> Captions:
    images = next((root / d for d in ("Images", "Flicker8k_Dataset", "Flickr8k_Dataset") if (root / d).is_dir()), root)
    out: Captions = {}
    if (root / "captions.txt").is_file():
        with open(root / "captions.txt", newline="") as f:
            for row in csv.DictReader(f):
                out.setdefault(str(images / row["image"]), []).append(row["caption"])
    else:
        for line in (root / "Flickr8k.token.txt").read_text().splitlines():
            if "\t" in line:
                name, caption = line.split("\t", 1)
                out.setdefault(str(images / name.split("#")[0]), []).append(caption)
    return out


def coco_captions(root: Path, split: str) -> Captions:
    path = root / "annotations" / f"captions_{split}2017.json"
    if not path.is_file():
        raise ConfigError(f"COCO layout: {path} is missing")
    data = json.loads(path.read_text())
    files = {img["id"]: str(root / f"{split}2017" / img["file_name"]) for img in data["images"]}
    out: Captions = {}
    for ann in data["annotations"]:
        out.setdefault(files[ann["image_id"]], []).append(ann["caption"])
    return out


class CaptionsDataModule(PairedDataModule):
    name = "captions"

    def __init__(
        self,
        root: str | None = None,
        layout: str = "auto",
        image_size: int = 64,
        min_count: int = 2,
        max_length: int = 30,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        **loader_kwargs: Any,
    ) -> None:
        if not root:
            raise ConfigError("data=captions needs data.root=<folder in the Flickr8k or COCO caption layout>")
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise ConfigError(f"data.root={self.root} is not a folder")
        if layout not in LAYOUTS:
            raise ConfigError(f"data.layout={layout!r} is not one of {list(LAYOUTS)}")
        if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
            raise ConfigError("data.val_fraction and data.test_fraction must be in [0, 1) and sum to less than 1")
        if int(image_size) < 8 or int(min_count) < 1 or int(max_length) < 1:
            raise ConfigError("data.image_size must be >= 8, data.min_count and data.max_length >= 1")
        self.layout = detect_layout(self.root) if layout == "auto" else layout
        self.params = dict(
            layout=self.layout,
            image_size=int(image_size),
            min_count=int(min_count),
            max_length=int(max_length),
            val_fraction=float(val_fraction),
            test_fraction=float(test_fraction),
            seed=int(seed),
        )
        super().__init__(**loader_kwargs)

    def modality_names(self) -> list[str]:
        return ["image"]

    def fingerprint(self) -> dict[str, Any]:
        stamps = {
            p.name: content_stamp(p, self.cache_dir)[1:]
            for p in sorted([*self.root.glob("*.txt"), *self.root.glob("annotations/*.json")])
        }
        return {"version": 1, "root": str(self.root), "sources": stamps, **self.params}

    def split_captions(self) -> dict[str, Captions]:
        p = self.params
        rng = np.random.default_rng(p["seed"])
        if self.layout == "coco":
            train, test = coco_captions(self.root, "train"), coco_captions(self.root, "val")
            names = sorted(train)
            val_names = set(rng.permutation(names)[: int(round(len(names) * p["val_fraction"]))].tolist())
            splits = {
                "train": {k: v for k, v in train.items() if k not in val_names},
                "val": {k: v for k, v in train.items() if k in val_names},
                "test": test,
            }
        else:
            every = flickr8k_captions(self.root)
            listed = {s: self.root / f"Flickr_8k.{s}Images.txt" for s in ("train", "dev", "test")}
            if all(f.is_file() for f in listed.values()):
                parent = Path(next(iter(every))).parent if every else self.root
                chosen = {s: {str(parent / n.strip()) for n in f.read_text().split()} for s, f in listed.items()}
                splits = {
                    name: {k: v for k, v in every.items() if k in chosen[key]}
                    for name, key in (("train", "train"), ("val", "dev"), ("test", "test"))
                }
            else:
                order = rng.permutation(sorted(every)).tolist()
                n_val, n_test = (int(round(len(order) * p[f"{s}_fraction"])) for s in ("val", "test"))
                parts = {"val": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}
                splits = {s: {k: every[k] for k in names} for s, names in parts.items()}
        empty = [s for s, caps in splits.items() if not caps]
        if empty:
            raise ConfigError(
                f"data.root={self.root}: the {empty} split(s) hold no image; add images or change fractions"
            )
        return splits

    def build(self, scratch: Path) -> PreparedData:
        p = self.params
        splits = self.split_captions()
        vocab = fit_vocabulary([c for caps in splits["train"].values() for c in caps], p["min_count"])
        ids = {w: i for i, w in enumerate(vocab)}
        s = p["image_size"]
        features = datasets.Features(
            {
                "image": datasets.Array3D(shape=(3, s, s), dtype="float32"),
                "label": datasets.List(datasets.Value("int32")),
                REFERENCES_COLUMN: datasets.List(datasets.Value("string")),
                "file": datasets.Value("string"),
            }
        )

        def rows(split: str) -> Iterator[dict[str, Any]]:
            for path, caps in sorted(splits[split].items()):
                image = load_image(Path(path), s)
                refs = [" ".join(words(c)) for c in caps]
                chosen = caps if split == "train" else caps[:1]  # train: a row per caption
                for cap in chosen:
                    tokens = [ids.get(w, UNK_ID) for w in words(cap)][: p["max_length"]]
                    yield {"image": image, "label": tokens, REFERENCES_COLUMN: refs, "file": Path(path).name}

        out = {}
        for split in ("train", "val", "test"):
            try:
                out[split] = datasets.Dataset.from_generator(
                    rows, gen_kwargs={"split": split}, features=features, cache_dir=str(self.cache_dir / "generator")
                )
            except datasets.exceptions.DatasetGenerationError as exc:
                if isinstance(exc.__cause__, ConfigError):  # a bad file: say which, not datasets' wrapper
                    raise exc.__cause__ from None
                raise
        target = TargetSpec("generation", len(vocab), vocabulary=vocab, metric_set="captions")
        notes = {"layout": self.layout, "images": {k: len(v) for k, v in splits.items()}, "vocabulary": len(vocab)}
        return PreparedData(
            datasets.DatasetDict(out), {"image": ModalitySpec("image", "image", (3, s, s))}, target, notes=notes
        )


def load_image(path: Path, size: int) -> np.ndarray:
    """(3, size, size) float32 in [0, 1]; a clear error naming a missing or unreadable file."""
    from fuselab.data.readers.images import image_of

    try:
        return image_of(path, path.parent, {"size": size, "channels": 3})
    except ConfigError as exc:
        raise ConfigError(
            f"captions: {exc}{' (listed in the captions file)' if 'does not exist' in str(exc) else ''}"
        ) from exc
