"""Small files in the exact published layouts, written by the tests."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def write_avmnist(root: Path, n_train: int = 40, n_test: int = 12, seed: int = 0, flat_images: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    for m in ("image", "audio"):
        (root / m).mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.permutation(np.arange(n) % 10)  # every class in each split (and in train after val)
        img = rng.uniform(0, 255, size=(n, 784) if flat_images else (n, 28, 28)).astype(np.float32)
        np.save(root / "image" / f"{split}_data.npy", img)
        np.save(root / "audio" / f"{split}_data.npy", rng.uniform(0, 255, size=(n, 112, 112)).astype(np.float32))
        np.save(root / f"{split}_labels.npy", labels)
    return root


DIMS = {"text": 6, "audio": 4, "vision": 5}


def _padded(rng, n: int, t: int, d: int, lengths: np.ndarray, pre: bool) -> np.ndarray:
    x = np.zeros((n, t, d), dtype=np.float32)
    for i, length in enumerate(lengths):
        block = rng.normal(size=(length, d)).astype(np.float32) + 0.1
        if pre:
            x[i, t - length :] = block
        else:
            x[i, :length] = block
    return x


def write_affect(path: Path, layout: str, aligned: bool = True, n: int = 24, seed: int = 0, nan: bool = False) -> dict:
    """MultiBench/MulT (pre-padded, labels (N,1,1)) or MMSA (post-padded, regression_labels,
    lengths when unaligned). Returns the true lengths per split and modality."""
    rng = np.random.default_rng(seed)
    steps = {"text": 8, "audio": 8, "vision": 8} if aligned else {"text": 8, "audio": 12, "vision": 10}
    data, truth = {}, {}
    for split in ("train", "valid", "test"):
        lengths = {m: rng.integers(2, steps[m] + 1, size=n) for m in DIMS}
        if aligned:
            lengths = {m: lengths["text"] for m in DIMS}
        arrays = {m: _padded(rng, n, steps[m], DIMS[m], lengths[m], pre=layout != "mmsa") for m in DIMS}
        if nan and split == "train":
            arrays["audio"][0, -1, 0] = -np.inf
            arrays["audio"][1, -1, 1] = np.nan
        labels = np.round(rng.uniform(-3, 3, size=n), 1)
        labels[0] = 0.0
        split_data: dict = dict(arrays)
        if layout == "mmsa":
            split_data["regression_labels"] = labels.astype(np.float32)
            split_data["raw_text"] = ["words"] * n
            split_data["id"] = [f"{split}_{i}" for i in range(n)]
            if not aligned:
                split_data["audio_lengths"] = lengths["audio"].tolist()
                split_data["vision_lengths"] = lengths["vision"].tolist()
        else:
            split_data["labels"] = labels.reshape(n, 1, 1).astype(np.float32)
            split_data["id"] = np.array([[f"{split}_{i}", "0", "1"] for i in range(n)])
        data[split] = split_data
        truth[split] = {"lengths": lengths, "labels": labels, "arrays": arrays}
    with open(path, "wb") as f:
        pickle.dump(data, f)
    return truth


def write_mmimdb(path: Path, n: int = 60, seed: int = 0, images: bool = False) -> Path:
    import h5py

    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f["features"] = rng.normal(size=(n, 300)).astype(np.float32)
        f["vgg_features"] = rng.normal(size=(n, 4096)).astype(np.float32)
        if images:
            f["images"] = rng.integers(0, 255, size=(n, 3, 16, 12)).astype(np.uint8)
        f["genres"] = (rng.random((n, 23)) < 0.2).astype(np.int8)
    return path


REVIEW_WORDS = ["good", "bad", "film", "plot", "actor", "music", "long", "short"]


def write_reviews(root: Path, n: int = 60, seed: int = 0, empty_row: int | None = None) -> Path:
    """train/validation/test parquet files: a sentence (its label is whether 'good' or 'bad' is in
    it) and a vector; only val and test mention 'zebra'."""
    import datasets

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation", "test"):
        rows = {"review": [], "stats": [], "label": []}
        for i in range(n):
            label = int(rng.integers(2))
            words = list(rng.choice(REVIEW_WORDS[2:], size=3)) + ["good" if label else "bad"]
            if split != "train" and i % 5 == 0:
                words.append("zebra")
            rng.shuffle(words)
            text = ("The " + " ".join(words) + ".") if i % 2 else " ".join(words).upper() + "!"
            rows["review"].append("" if (split == "train" and i == empty_row) else text)
            rows["stats"].append(rng.normal(size=3).astype(np.float32).tolist())
            rows["label"].append(label)
        datasets.Dataset.from_dict(rows).to_parquet(str(root / f"{split}.parquet"))
    return root


def write_folder(root: Path, n: int = 16, corrupt: str | None = None) -> Path:
    """Images of a bright square on the left or the right, tones low or high, sentences."""
    import datasets
    import soundfile as sf
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True)
    (root / "wav").mkdir()
    for split in ("train", "validation", "test"):
        rows: dict[str, list] = {"photo": [], "speech": [], "caption": [], "label": []}
        for i in range(n):
            label = i % 2
            img = rng.integers(0, 40, (20, 24), dtype=np.uint8)
            img[5:15, (2 if label else 14) : (2 if label else 14) + 8] = 250
            Image.fromarray(img).save(root / "img" / f"{split}{i}.png")
            t = np.arange(2400) / 8000
            sf.write(root / "wav" / f"{split}{i}.wav", 0.4 * np.sin(2 * np.pi * (300 if label else 1500) * t), 8000)
            rows["photo"].append(f"img/{split}{i}.png")
            rows["speech"].append(f"wav/{split}{i}.wav")
            rows["caption"].append(["a left one", "the right side"][label] + " " + "xyz"[i % 3])
            rows["label"].append(label)
        datasets.Dataset.from_dict(rows).to_parquet(str(root / f"{split}.parquet"))
    if corrupt:
        (root / corrupt).write_bytes(b"\x89PNG broken")
    return root
