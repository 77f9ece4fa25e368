"""Video: frame folders, .npy files and arrays through data=hf, and the moving-digits dataset
built from the shared MNIST and FSDD files."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
from conftest import FAST, SHARED_DATA, compose_train
from PIL import Image

from fuselab.data.datasets.hf import HFDataModule
from fuselab.errors import ConfigError
from fuselab.runs.job import train_job

SHARED = pytest.mark.skipif(
    not (SHARED_DATA / "mnist").is_dir() or not (SHARED_DATA / "fsdd").is_dir(),
    reason="../shared/data (MNIST, FSDD) is not on this machine",
)


def write_clips(root: Path, empty: str | None = None) -> Path:
    """Clips of a bar moving left or right (the label): frame folders in train, .npy files of
    uint8 frames in validation and of float frames in test; 3-6 frames each."""
    rng = np.random.default_rng(0)
    for split in ("train", "validation", "test"):
        rows: dict[str, list] = {"clip": [], "label": []}
        for i in range(8):
            label, t = i % 2, 3 + i % 4
            frames = np.zeros((t, 12, 12), dtype=np.uint8)
            for k in range(t):
                col = (2 + 2 * k) if label else (9 - 2 * k)
                frames[k, :, max(col, 0) : max(col, 0) + 2] = 255
            if split == "train":
                folder = root / "frames" / f"{i}"
                folder.mkdir(parents=True)
                for k, f in enumerate(frames):
                    Image.fromarray(f).save(folder / f"{k:03d}.png")
                if empty == f"{i}":
                    for f in folder.iterdir():
                        f.unlink()
                rows["clip"].append(f"frames/{i}")
            else:  # validation: uint8 frames; test: float frames in [0, 1]
                (root / "npy").mkdir(parents=True, exist_ok=True)
                arr = (
                    frames if split == "validation" else (frames / 255.0 + rng.normal(0, 0.01, frames.shape)).clip(0, 1)
                )
                np.save(root / "npy" / f"{split}{i}.npy", arr)
                rows["clip"].append(f"npy/{split}{i}.npy")
            rows["label"].append(label)
        datasets.Dataset.from_dict(rows).to_parquet(str(root / f"{split}.parquet"))
    return root


def test_video_arrays_of_any_layout_become_resized_frames():
    from fuselab.data.readers.images import video_of

    grey = np.zeros((4, 10, 10), dtype=np.uint8)
    grey[:, :, :5] = 255
    out = video_of(grey, Path("."), {"size": 6, "channels": 1})
    assert (
        out.shape == (4, 36)
        and out.reshape(4, 6, 6)[:, :, 0].min() == 1.0
        and out.reshape(4, 6, 6)[:, :, -1].max() == 0.0
    )
    rgb = np.random.default_rng(0).random((2, 3, 10, 10))
    assert video_of(rgb, Path("."), {"size": [5, 4], "channels": 3}).shape == (2, 3 * 5 * 4)
    with pytest.raises(ConfigError, match=r"T >= 1, got shape \(0, 10, 10\)"):
        video_of(np.zeros((0, 10, 10)), Path("."), {"size": 6, "channels": 1})


def clip_module(root: Path, tmp_path: Path, **kwargs) -> HFDataModule:
    columns = {"clip": {"column": "clip", "kind": "video", "size": 8, "channels": 1}}
    return HFDataModule(str(root), columns=columns, cache_dir=str(tmp_path / "cache"), batch_size=4, **kwargs)


def test_video_columns_from_frame_folders_npy_files_and_arrays(tmp_path: Path):
    root = write_clips(tmp_path / "clips")
    dm = clip_module(root, tmp_path)
    assert dm.describe().modalities["clip"].shape == (None, 1, 8, 8)
    dm.setup()
    for split in ("train", "val", "test"):
        lengths = [len(dm.splits[split][i]["clip"]) for i in range(8)]
        assert lengths == [3 + i % 4 for i in range(8)], split
    batch = next(iter(dm.test_dataloader()))
    v = batch["inputs"]["clip"]
    assert v.x.shape == (4, 6, 64) and v.lengths.tolist() == [3, 4, 5, 6]
    first = np.asarray(dm.rows("train", [1])["clip"][0]).reshape(-1, 8, 8)
    assert first[0, :, :3].mean() > first[0, :, 5:].mean()  # label 1: the bar starts on the left
    with pytest.raises(ConfigError, match="a video column needs size"):
        HFDataModule(str(root), columns={"clip": {"column": "clip", "kind": "video"}})


def test_a_video_without_frames_is_named_or_skipped(tmp_path: Path):
    root = write_clips(tmp_path / "clips", empty="2")
    with pytest.raises(
        ConfigError, match=r"row 2 of the train split: the video folder .*frames/2 holds no frame images"
    ):
        clip_module(root, tmp_path).describe()
    dm = clip_module(root, tmp_path / "skip", bad_rows="skip")
    dm.setup()
    assert len(dm.splits["train"]) == 7 and dm.prepared_marker()["notes"]["skipped_rows"]["train"] == 1


def test_a_video_model_trains_on_hf_clips(tmp_path: Path):
    root = write_clips(tmp_path / "clips")
    cfg = compose_train(
        [
            "data=hf",
            f"data.source={root}",
            "data.columns={clip: {column: clip, kind: video, size: 8, channels: 1}}",
            "data.batch_size=4",
            *FAST,
        ],
        output_dir=tmp_path / "run",
    )
    assert train_job(cfg)["status"] == "completed"


@pytest.mark.slow  # trains or builds a dataset for over a second
@SHARED
def test_moving_digits_is_deterministic_aligned_and_trains(tmp_path: Path):
    from fuselab.data.datasets.moving_digits import MovingDigitsDataModule

    kw = dict(train_size=24, val_size=8, test_size=8, batch_size=8)
    a = MovingDigitsDataModule(
        str(SHARED_DATA / "mnist"), str(SHARED_DATA / "fsdd"), cache_dir=str(tmp_path / "a"), **kw
    )
    b = MovingDigitsDataModule(
        str(SHARED_DATA / "mnist"), str(SHARED_DATA / "fsdd"), cache_dir=str(tmp_path / "b"), **kw
    )
    a.setup(), b.setup()
    d = a.describe()
    assert d.aligned and d.modalities["video"].shape == (None, 1, 32, 32) and d.modalities["audio"].shape == (None, 40)
    for i in range(8):
        ra, rb = a.splits["test"][i], b.splits["test"][i]
        assert np.array_equal(np.asarray(ra["video"]), np.asarray(rb["video"])) and ra["label"] == rb["label"]
        assert len(ra["video"]) == len(ra["audio"]) and 6 <= len(ra["video"]) <= 12
    overrides = [
        "data=moving_digits",
        f"data.mnist_dir={SHARED_DATA / 'mnist'}",
        f"data.fsdd_dir={SHARED_DATA / 'fsdd'}",
        "data.train_size=24",
        "data.val_size=8",
        "data.test_size=8",
        "data.batch_size=8",
        *FAST,
    ]
    assert train_job(compose_train(overrides, output_dir=tmp_path / "run"))["status"] == "completed"
    early = compose_train(["experiment=recipe_cnn_lstm", *overrides[1:]], output_dir=tmp_path / "early")
    assert train_job(early)["status"] == "completed"
