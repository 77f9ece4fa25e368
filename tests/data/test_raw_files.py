"""From a folder of raw files (PNG images, WAV recordings, sentences) to a trained model through
data=hf (experiment=raw_files), and the worked example's builder on the shared data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
from conftest import FAST, REPO, SHARED_DATA, compose_train
from fixtures_data import write_folder

from fuselab.data.datasets.hf import HFDataModule
from fuselab.errors import ConfigError
from fuselab.runs.job import train_job


def test_raw_files_preset_reads_images_audio_and_text_and_trains(tmp_path: Path):
    root = write_folder(tmp_path / "raw")
    cfg = compose_train(
        ["experiment=raw_files", f"data.source={root}", "data.batch_size=8", *FAST], output_dir=tmp_path / "run"
    )
    summary = train_job(cfg)
    assert summary["status"] == "completed" and summary["modalities"] == ["image", "audio", "text"]
    dm = HFDataModule(str(root), columns=dict(cfg.data.columns), cache_dir=str(tmp_path / "c"), batch_size=4)
    specs = dm.describe().modalities
    assert specs["image"].shape == (1, 28, 28) and specs["audio"].shape == (None, 40) and specs["text"].kind == "tokens"
    dm.setup()
    img = np.asarray(dm.rows("test", [1])["image"][0])
    assert img.shape == (1, 28, 28) and 0.0 <= img.min() and img.max() <= 1.0
    assert img[0, 8:20, 2:12].mean() > img[0, 8:20, 18:26].mean()  # label 1: the square is on the left


def test_a_corrupt_image_is_named_or_skipped_and_counted(tmp_path: Path):
    root = write_folder(tmp_path / "raw", corrupt="img/validation3.png")
    columns = {
        "image": {
            "column": "photo",
            "kind": "image",
            "size": [16, 16],
            "channels": 3,
            "mean": [0.5] * 3,
            "std": [0.25] * 3,
        }
    }
    with pytest.raises(ConfigError, match=r"row 3 of the val split: the image .*img/validation3.png cannot be read"):
        HFDataModule(str(root), columns=columns, cache_dir=str(tmp_path / "c"), batch_size=4).describe()
    dm = HFDataModule(str(root), columns=columns, cache_dir=str(tmp_path / "c2"), batch_size=4, bad_rows="skip")
    dm.setup()
    assert len(dm.splits["val"]) == 15 and dm.prepared_marker()["notes"]["skipped_rows"] == {
        "train": 0,
        "val": 1,
        "test": 0,
    }
    x = np.asarray(dm.rows("train", [0])["image"][0])
    assert x.shape == (3, 16, 16) and x.min() < 0  # normalised with the given mean and std
    with pytest.raises(ConfigError, match=r"\['resize'\] do not apply to image"):
        HFDataModule(str(root), columns={"image": {"column": "photo", "kind": "image", "resize": 3}})


@pytest.mark.skipif(
    not (SHARED_DATA / "mnist").is_dir() or not (SHARED_DATA / "fsdd").is_dir(),
    reason="../shared/data (MNIST, FSDD) is not on this machine",
)
@pytest.mark.slow  # trains or builds a dataset for over a second
def test_worked_example_builder_writes_a_folder_that_trains(tmp_path: Path):
    out = tmp_path / "raw_digits"
    args = ["--mnist", str(SHARED_DATA / "mnist"), "--fsdd", str(SHARED_DATA / "fsdd"), "--out", str(out)]
    script = str(REPO / "experiments" / "raw_files" / "make_folder.py")
    subprocess.run(
        [sys.executable, script, *args, "--n-train", "40", "--n-val", "10", "--n-test", "10"],
        check=True,
        capture_output=True,
    )
    test = datasets.Dataset.from_parquet(str(out / "test.parquet"))
    assert len(test) == 10 and (out / test[0]["photo"]).is_file() and (out / test[0]["speech"]).is_file()
    summary = train_job(
        compose_train(
            ["experiment=raw_files", f"data.source={out}", "data.batch_size=8", *FAST], output_dir=tmp_path / "run"
        )
    )
    assert summary["status"] == "completed"
    again = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    assert again.returncode != 0 and "exists and is not empty; nothing is overwritten" in again.stderr
