"""Pictures stored once (fuselab.data.stores): rows that share a file, or files of identical
bytes, share one stored picture; the cache stays near the source's size; what the loader gives
equals converting each row's image to float at preparation, bit for bit."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fuselab.data.datasets.hf import HFDataModule
from fuselab.data.normalization import train_statistics
from fuselab.data.readers.images import image_of, video_of
from fuselab.data.stores import STORE_DIR

N_FILES, N_ROWS = 12, 150


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_shared(root: Path, size: int = 24, copies: int = 2) -> Path:
    """A parquet per split whose rows name 12 noise PNGs (each shown by many rows), and ``copies``
    of the first file under other names (identical bytes)."""
    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True)
    for i in range(N_FILES):
        pixels = rng.integers(0, 256, (size, size + 4, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "img" / f"{i}.png")
    for c in range(copies):
        shutil.copy(root / "img" / "0.png", root / "img" / f"copy{c}.png")
    names = [f"img/{i}.png" for i in range(N_FILES)] + [f"img/copy{c}.png" for c in range(copies)]
    for split, n in (("train", N_ROWS), ("validation", 40), ("test", 40)):
        idx = rng.integers(0, len(names), n)
        pd.DataFrame(
            {"photo": [names[i] for i in idx], "question": ["what is it"] * n, "answer": [f"a{i % 3}" for i in idx]}
        ).to_parquet(root / f"{split}.parquet")
    return root


def module(root: Path, cache: Path, **image) -> HFDataModule:
    settings = {"column": "photo", "kind": "image", "size": [16, 20], "channels": 3, **image}
    return HFDataModule(
        str(root),
        columns={"image": settings, "question": {"column": "question", "kind": "text"}},
        target_column="answer",
        cache_dir=str(cache),
        batch_size=32,
    )


@pytest.mark.parametrize("store", ["uint8", "png"])
def test_shared_images_are_stored_once_and_read_back_as_the_float_path_made_them(tmp_path: Path, store: str):
    root = write_shared(tmp_path / "src")
    settings = {"mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3], "store": store}
    dm = module(root, tmp_path / "cache", **settings)
    dm.setup()
    info = dm.prepared_marker()["stores"]["image"]
    # twelve distinct files (the copies have the first one's bytes), 230 rows pointing at them
    assert info["count"] == N_FILES and info["references"] == N_ROWS + 80 and info["format"] == store
    stored = folder_size(dm.prepared_dir() / STORE_DIR)
    if store == "uint8":
        assert stored == N_FILES * 3 * 16 * 20 + 8 * (N_FILES + 1) + 128  # the pictures, their offsets
    assert folder_size(dm.prepared_dir()) < 3 * folder_size(root)
    assert dm.splits["train"].features["image"].dtype == "int64"  # a row holds its picture's number
    rows = dm.rows("train", list(range(20)))
    expected = [
        image_of(p, root, {"size": [16, 20], "channels": 3, **settings})
        for p in pd.read_parquet(root / "train.parquet")["photo"][:20]
    ]
    np.testing.assert_array_equal(rows["image"], np.stack(expected))
    assert rows["image"].dtype == np.float32
    batch = next(iter(dm.train_dataloader()))
    assert batch["inputs"]["image"].x.shape == (32, 3, 16, 20)


def test_auto_stores_png_when_uint8_would_be_far_larger_than_the_source(tmp_path: Path):
    root = tmp_path / "src"
    (root / "img").mkdir(parents=True)
    for i in range(4):  # flat colours: tiny PNG files, large as uint8
        Image.new("RGB", (64, 64), (60 * i, 20, 200)).save(root / "img" / f"{i}.png")
    for split in ("train", "validation", "test"):
        rows = {"photo": [f"img/{i % 4}.png" for i in range(12)], "answer": [i % 2 for i in range(12)]}
        pd.DataFrame(rows).to_parquet(root / f"{split}.parquet")
    dm = HFDataModule(
        str(root),
        columns={"image": {"column": "photo", "kind": "image", "size": 64}},
        target_column="answer",
        cache_dir=str(tmp_path / "c"),
    )
    dm.setup()
    info = dm.prepared_marker()["stores"]["image"]
    assert info["format"] == "png" and info["count"] == 4
    assert folder_size(dm.prepared_dir() / STORE_DIR) < 4 * 3 * 64 * 64 / 10
    got = dm.rows("test", [0, 1, 5])["image"]
    want = np.stack([image_of(f"img/{i}.png", root, {"size": 64}) for i in (0, 1, 1)])
    np.testing.assert_array_equal(got, want)


def test_normalisation_statistics_weigh_each_stored_picture_by_its_rows(tmp_path: Path):
    root = write_shared(tmp_path / "src", copies=0)
    dm = module(root, tmp_path / "cache")
    dm.setup()
    train = dm.splits["train"]
    stats = train_statistics(train, dm.describe().modalities, chunk=7, stores=dm.stores)["image"]
    every = dm.rows("train", list(range(len(train))))["image"].astype(np.float64)
    mean = every.mean((0, 2, 3))
    std = every.std((0, 2, 3))
    np.testing.assert_allclose(stats[0].ravel(), mean, rtol=1e-5)
    np.testing.assert_allclose(stats[1].ravel(), std, rtol=1e-4)


def test_video_frames_shared_between_clips_are_stored_once(tmp_path: Path):
    root = tmp_path / "clips"
    frames = root / "frames"
    frames.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).save(frames / f"{i}.png")
    clips = []
    for c in range(6):  # each clip a folder of links to three of the five frames
        d = root / f"clip{c}"
        d.mkdir()
        for t in range(3):
            (d / f"{t}.png").write_bytes((frames / f"{(c + t) % 5}.png").read_bytes())
        clips.append(f"clip{c}")
    for split in ("train", "validation", "test"):
        pd.DataFrame({"clip": clips, "label": [c % 2 for c in range(6)]}).to_parquet(root / f"{split}.parquet")
    settings = {"column": "clip", "kind": "video", "size": 8, "channels": 1}
    dm = HFDataModule(str(root), columns={"clip": settings}, cache_dir=str(tmp_path / "c"), batch_size=6)
    dm.setup()
    info = dm.prepared_marker()["stores"]["clip"]
    assert info["count"] == 5 and info["references"] == 3 * 6 * 3 and info["frames"]
    got = dm.rows("val", [2, 4])["clip"]
    for clip, c in zip(got, (2, 4), strict=True):
        np.testing.assert_array_equal(clip, video_of(root / f"clip{c}", root, {"size": 8, "channels": 1}))
    batch = next(iter(dm.test_dataloader()))
    assert batch["inputs"]["clip"].x.shape == (6, 3, 64)


def test_the_worked_example_folder_prepares_with_its_names_and_pictures_stored_once(tmp_path: Path):
    import subprocess
    import sys

    from conftest import REPO

    root = tmp_path / "shapes"
    script = REPO / "experiments" / "own_data" / "make_shapes.py"
    subprocess.run([sys.executable, str(script), "--out", str(root)], check=True, capture_output=True)
    columns = {
        "image": {"column": "image", "kind": "image", "size": 32},
        "question": {"column": "question", "kind": "text"},
    }
    dm = HFDataModule(str(root), columns=columns, target_column="answer", cache_dir=str(tmp_path / "c"))
    target = dm.describe().target
    assert target.class_names == ("blue", "circle", "green", "red", "square")
    dm.setup()
    info = dm.stores["image"].info
    assert info.count == 300 and info.references == 1500  # five questions per picture
    source = folder_size(root / "images")
    assert info.stored_bytes(dm.prepared_dir()) <= 3 * source
