"""The captioning loader on small folders in the Flickr8k and COCO layouts, made here."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fuselab.data.datasets.captions import CaptionsDataModule, fit_vocabulary, words
from fuselab.data.specs import UNK_ID
from fuselab.errors import ConfigError


def image(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 12), colour).save(path)


def flickr(root, n=10, split_files=False):
    lines = ["image,caption"]
    for i in range(n):
        image(root / "Images" / f"{i}.jpg", (20 * i, 0, 0))
        for k in range(3):
            lines.append(f"{i}.jpg,A red dog number {i} runs{' fast' * k}.")
    (root / "captions.txt").write_text("\n".join(lines) + "\n")
    if split_files:
        for name, ids in (("train", range(0, 6)), ("dev", range(6, 8)), ("test", range(8, 10))):
            (root / f"Flickr_8k.{name}Images.txt").write_text("\n".join(f"{i}.jpg" for i in ids) + "\n")
    return root


def test_flickr8k_layout_with_split_files(tmp_path):
    dm = CaptionsDataModule(str(flickr(tmp_path / "f", split_files=True)), image_size=8, cache_dir=str(tmp_path / "c"))
    p = dm.build(tmp_path)
    train, test = p.splits["train"].with_format("numpy")[:], p.splits["test"]
    assert len(train["label"]) == 6 * 3 and len(test) == 2  # a row per caption in train, per image in test
    assert set(test["file"]) == {"8.jpg", "9.jpg"}
    assert len(test[0]["references"]) == 3 and test[0]["references"][0] == "a red dog number 8 runs"
    assert train["image"].shape[1:] == (3, 8, 8) and 0 <= train["image"].min() and train["image"].max() <= 1
    assert p.target.is_generation and p.target.metric_set == "captions"
    # min_count=2: each image's number is in its three captions, so "5" (train) is a word, and
    # the test images' numbers, never seen in train, are unknown
    assert "5" in p.target.vocabulary and "8" not in p.target.vocabulary
    assert UNK_ID in [t for row in test["label"] for t in row]


def test_vocabulary_is_fitted_on_train_only(tmp_path):
    dm = CaptionsDataModule(
        str(flickr(tmp_path / "f", split_files=True)), image_size=8, min_count=1, cache_dir=str(tmp_path / "c")
    )
    vocab = dm.build(tmp_path).target.vocabulary
    assert {"0", "5"} <= set(vocab) and not {"6", "7", "8", "9"} & set(vocab)


def test_random_split_and_loader(tmp_path):
    dm = CaptionsDataModule(
        str(flickr(tmp_path / "f")),
        image_size=8,
        val_fraction=0.2,
        test_fraction=0.2,
        batch_size=4,
        cache_dir=str(tmp_path / "c"),
    )
    batch = next(iter(dm.val_dataloader()))
    assert batch["inputs"]["image"].x.shape == (2, 3, 8, 8)
    assert len(batch["references"]) == 2 and all(len(r) == 3 for r in batch["references"])


def test_coco_layout(tmp_path):
    root = tmp_path / "coco"
    for split, n in (("train", 6), ("val", 2)):
        imgs, anns = [], []
        for i in range(n):
            name = f"{split}_{i}.jpg"
            image(root / f"{split}2017" / name, (0, 30 * i, 0))
            imgs.append({"id": 100 + i, "file_name": name})
            anns += [{"image_id": 100 + i, "caption": f"a green cat {k}"} for k in range(5)]
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"captions_{split}2017.json").write_text(
            json.dumps({"images": imgs, "annotations": anns})
        )
    p = CaptionsDataModule(str(root), image_size=8, val_fraction=0.34, cache_dir=str(tmp_path / "c")).build(tmp_path)
    assert len(p.splits["test"]) == 2 and len(p.splits["val"]) == 2 and len(p.splits["train"]) == 4 * 5
    assert all(len(r) == 5 for r in p.splits["test"]["references"])


def test_bad_inputs_are_named(tmp_path):
    root = flickr(tmp_path / "f", n=4)
    (root / "Images" / "2.jpg").write_bytes(b"not an image")
    with pytest.raises(ConfigError, match="2.jpg cannot be read"):
        CaptionsDataModule(
            str(root), image_size=8, val_fraction=0.25, test_fraction=0.25, cache_dir=str(tmp_path / "c")
        ).build(tmp_path)
    with pytest.raises(ConfigError, match="neither a Flickr8k layout"):
        CaptionsDataModule(str(tmp_path), cache_dir=str(tmp_path / "c"))
    with pytest.raises(ConfigError, match="data.root"):
        CaptionsDataModule(None)


def test_words_and_vocabulary():
    assert words("A dog's ball, RED!") == ["a", "dog's", "ball", "red"]
    vocab = fit_vocabulary(["a b b", "b c"], min_count=2)
    assert vocab[4:] == ("b",)
    assert np.all(np.asarray([len(v) for v in vocab]) > 0)
