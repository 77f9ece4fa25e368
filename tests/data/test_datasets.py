"""Real-data loaders on small files in the exact published layouts, and their errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST, SHARED_DATA, compose_train
from fixtures_data import DIMS, write_affect, write_avmnist, write_mmimdb

from fuselab.data.datasets.affect import AffectDataModule
from fuselab.data.datasets.avmnist import AVMNISTDataModule
from fuselab.data.datasets.mmimdb import MMIMDbDataModule
from fuselab.errors import ConfigError
from fuselab.runs.job import train_job as train


def loader_kwargs(tmp_path: Path) -> dict:
    return {"cache_dir": str(tmp_path / "cache"), "batch_size": 8}


# ---- AV-MNIST ---------------------------------------------------------------------------------
@pytest.mark.parametrize("flat", [True, False])
def test_avmnist_reads_multibench_layout(tmp_path: Path, flat: bool):
    root = write_avmnist(tmp_path / "avmnist", flat_images=flat)
    dm = AVMNISTDataModule(str(root), val_size=10, **loader_kwargs(tmp_path))
    dm.setup()
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [30, 10, 12]
    batch = next(iter(dm.train_dataloader()))
    img, aud = batch["inputs"]["image"], batch["inputs"]["audio"]
    assert img.x.shape == (8, 1, 28, 28) and float(img.x.max()) <= 1.0
    assert aud.x.shape == (8, 112, 112) and aud.lengths.tolist() == [112] * 8
    # validation is the LAST val_size train samples
    labels = np.load(root / "train_labels.npy")
    assert dm.split_labels("val").tolist() == labels[-10:].tolist()


def test_avmnist_audio_as_image_and_subset(tmp_path: Path):
    root = write_avmnist(tmp_path / "avmnist")
    dm = AVMNISTDataModule(str(root), audio_as="image", val_size=10, modalities=["audio"], **loader_kwargs(tmp_path))
    batch = next(iter(dm.val_dataloader()))
    assert set(batch["inputs"]) == {"audio"} and batch["inputs"]["audio"].x.shape[1:] == (1, 112, 112)


def test_avmnist_bad_files_name_the_file_and_the_expectation(tmp_path: Path):
    root = write_avmnist(tmp_path / "avmnist")
    np.save(root / "audio" / "test_data.npy", np.zeros((12, 100, 100), dtype=np.float32))
    with pytest.raises(ConfigError, match=r"audio/test_data.npy has shape \(12, 100, 100\), expected \(N, 112, 112\)"):
        AVMNISTDataModule(str(root), val_size=10, **loader_kwargs(tmp_path)).prepare_data()
    raw = (root / "image" / "train_data.npy").read_bytes()
    (root / "image" / "train_data.npy").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ConfigError, match="image/train_data.npy cannot be read as a .npy array"):
        AVMNISTDataModule(str(root), val_size=10, **loader_kwargs(tmp_path / "2")).prepare_data()
    (root / "train_labels.npy").unlink()
    with pytest.raises(ConfigError, match="train_labels.npy does not exist. Point data.data_dir"):
        AVMNISTDataModule(str(root), val_size=10, **loader_kwargs(tmp_path / "3")).prepare_data()


@pytest.mark.skipif(
    not (SHARED_DATA / "mnist").is_dir() or not (SHARED_DATA / "fsdd").is_dir(),
    reason="../shared/data (MNIST, FSDD) is not on this machine",
)
@pytest.mark.slow  # trains or builds a dataset for over a second
def test_avmnist_builder_end_to_end_on_a_slice(tmp_path: Path):
    from fuselab.data.datasets.avmnist_build import build_avmnist
    from fuselab.data.readers.mnist_fsdd import fsdd_recordings

    info = build_avmnist(SHARED_DATA / "mnist", SHARED_DATA / "fsdd", tmp_path / "av", train_limit=300, test_limit=60)
    assert info["train"] == 300 and 1 <= info["pca_components"] <= 30
    image = np.load(tmp_path / "av" / "image" / "train_data.npy")
    audio = np.load(tmp_path / "av" / "audio" / "test_data.npy")
    assert image.shape == (300, 784) and audio.shape == (60, 112, 112)
    assert 0 <= audio.min() and audio.max() <= 255
    split = fsdd_recordings(SHARED_DATA / "fsdd")
    train = {p.name for files in split["train"].values() for p in files}
    test = {p.name for files in split["test"].values() for p in files}
    assert len(train) == 2700 and len(test) == 300 and not train & test
    assert all(int(name.rsplit("_", 1)[1][:-4]) <= 4 for name in test)
    dm = AVMNISTDataModule(str(tmp_path / "av"), val_size=50, **loader_kwargs(tmp_path))
    assert next(iter(dm.test_dataloader()))["inputs"]["audio"].x.shape[1:] == (112, 112)
    with pytest.raises(ConfigError, match="exists and is not empty; nothing is overwritten"):
        build_avmnist(SHARED_DATA / "mnist", SHARED_DATA / "fsdd", tmp_path / "av", train_limit=10, test_limit=10)


# ---- CMU-MOSI / MOSEI ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "layout,aligned", [("multibench", True), ("multibench", False), ("mmsa", True), ("mmsa", False)]
)
def test_affect_layouts_recover_lengths_and_labels(tmp_path: Path, layout: str, aligned: bool):
    path = tmp_path / "mosi.pkl"
    truth = write_affect(path, layout, aligned=aligned)
    dm = AffectDataModule(str(path), dataset="mosi", **loader_kwargs(tmp_path))
    assert {m: s.shape for m, s in dm.describe().modalities.items()} == {m: (None, d) for m, d in DIMS.items()}
    assert dm.describe().aligned == aligned and dm.describe().target.metric_set == "affect"
    dm.setup()
    row = dm.splits["test"][3]
    for m in DIMS:
        expected_len = truth["test"]["lengths"][m][3]
        assert len(row[m]) == expected_len, (m, layout)
        arr = truth["test"]["arrays"][m][3]
        real = arr[-expected_len:] if layout != "mmsa" else arr[:expected_len]
        np.testing.assert_allclose(row[m], real, rtol=1e-6)
    np.testing.assert_allclose(dm.split_labels("test"), truth["test"]["labels"], rtol=1e-6)


def test_affect_cleans_or_refuses_non_finite_values(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    path = tmp_path / "mosi.pkl"
    write_affect(path, "multibench", nan=True)
    dm = AffectDataModule(str(path), **loader_kwargs(tmp_path))
    dm.setup()
    assert dm.prepared_marker()["notes"]["cleaned_non_finite"] == {"text": 0, "audio": 2, "vision": 0}
    assert "set 2 NaN/inf values of audio to 0" in caplog.text
    assert np.isfinite(np.concatenate(list(dm.splits["train"]["audio"]))).all()
    with pytest.raises(ConfigError, match="has 2 NaN/inf values; set data.clean=zero"):
        AffectDataModule(str(path), clean="refuse", **loader_kwargs(tmp_path / "r")).prepare_data()


def test_affect_errors_name_the_file_and_what_is_missing(tmp_path: Path):
    path = tmp_path / "bad.pkl"
    with open(path, "wb") as f:
        pickle.dump({"train": {"text": np.zeros((2, 3, 4))}, "valid": {}, "test": {}}, f)
    with pytest.raises(ConfigError, match=r"bad.pkl: its splits have keys \['text'\]; expected 'labels'"):
        AffectDataModule(str(path), **loader_kwargs(tmp_path)).prepare_data()
    with open(path, "wb") as f:
        pickle.dump({"train": {}}, f)
    with pytest.raises(ConfigError, match=r"no split\(s\) \['valid', 'test'\]"):
        AffectDataModule(str(path), **loader_kwargs(tmp_path / "2")).prepare_data()
    good = tmp_path / "good.pkl"
    write_affect(good, "mmsa")
    good.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ConfigError, match="cannot be unpickled"):
        AffectDataModule(str(good), **loader_kwargs(tmp_path / "3")).prepare_data()
    with pytest.raises(ConfigError, match="does not match its sha256"):
        write_affect(good, "mmsa")
        AffectDataModule(str(good), sha256="0" * 64, **loader_kwargs(tmp_path / "4")).prepare_data()
    with pytest.raises(ConfigError, match=r"is a directory; a file is expected there. Set data.path"):
        AffectDataModule(str(tmp_path), **loader_kwargs(tmp_path / "5")).prepare_data()


def test_a_pickle_that_runs_code_is_refused(tmp_path: Path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"train": Evil()}, f)
    with pytest.raises(ConfigError, match="refusing to load builtins.print"):
        AffectDataModule(str(path), **loader_kwargs(tmp_path)).prepare_data()


def test_affect_metrics_against_hand_computed_values():
    from fuselab.training.affect_metrics import affect_scores

    truth = np.array([2.0, -1.0, 0.0, 0.4, -2.6, 1.4])
    pred = np.array([1.6, 0.3, -0.2, -0.5, -3.4, 1.6])
    s = affect_scores(pred, truth)
    assert s["mae"] == pytest.approx(np.mean([0.4, 1.3, 0.2, 0.9, 0.8, 0.2]))
    assert s["corr"] == pytest.approx(np.corrcoef(pred, truth)[0, 1])
    # acc7: round(clip) pairs: (2,2) (0,-1) (-0,0) (-0,0) (-3,-3) (2,1) -> 4 of 6
    assert s["acc7"] == pytest.approx(4 / 6)
    # acc2 without zero labels: truth>0 [T,F,T,F,T], pred>0 [T,T,F,F,T] -> 3 of 5
    assert s["acc2"] == pytest.approx(3 / 5)
    # weighted F1 there: class T (support 3): tp2 fp1 fn1 -> 2/3; class F (support 2): tp1 fp1 fn1 -> 1/2
    assert s["f1"] == pytest.approx((3 * 2 / 3 + 2 * 1 / 2) / 5)
    # with zero: truth>=0 [T,F,T,T,F,T], pred>=0 [T,T,F,F,F,T] -> 3 of 6
    assert s["acc2_has0"] == pytest.approx(3 / 6)


# ---- MM-IMDb -----------------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["vgg", "images"])
def test_mmimdb_reads_hdf5_layout(tmp_path: Path, source: str):
    path = write_mmimdb(tmp_path / "mmimdb.hdf5", images=source == "images")
    dm = MMIMDbDataModule(str(path), image_source=source, split_ends=(40, 50, 60), **loader_kwargs(tmp_path))
    dm.setup()
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [40, 10, 10]
    batch = next(iter(dm.train_dataloader()))
    assert batch["inputs"]["text"].x.shape == (8, 300) and batch["target"].shape == (8, 23)
    expected = (8, 4096) if source == "vgg" else (8, 3, 16, 12)
    assert batch["inputs"]["image"].x.shape == expected
    assert dm.describe().target.kind == "multilabel" and len(dm.describe().target.class_names) == 23


def test_mmimdb_errors(tmp_path: Path):
    import h5py

    path = tmp_path / "m.hdf5"
    with h5py.File(path, "w") as f:
        f["features"] = np.zeros((5, 300), dtype=np.float32)
    with pytest.raises(ConfigError, match=r"has no dataset\(s\) \['vgg_features', 'genres'\]; it has \['features'\]"):
        MMIMDbDataModule(str(path), split_ends=(2, 3, 4), **loader_kwargs(tmp_path)).prepare_data()
    path.write_bytes(b"not hdf5")
    with pytest.raises(ConfigError, match="cannot be opened as hdf5"):
        MMIMDbDataModule(str(path), split_ends=(2, 3, 4), **loader_kwargs(tmp_path)).prepare_data()


# ---- Hugging Face -------------------------------------------------------------------------------
def test_hf_maps_columns_of_a_saved_dataset(tmp_path: Path):
    import datasets

    from fuselab.data.datasets.hf import HFDataModule

    rng = np.random.default_rng(0)

    def split(n):
        return datasets.Dataset.from_dict(
            {
                "mfcc": [rng.normal(size=(int(rng.integers(3, 7)), 5)).tolist() for _ in range(n)],
                "ids": [rng.integers(0, 20, size=int(rng.integers(2, 6))).tolist() for _ in range(n)],
                "meta": rng.normal(size=(n, 3)).tolist(),
                "y": rng.integers(0, 3, size=n).tolist(),
            }
        )

    datasets.DatasetDict({"train": split(30), "test": split(10)}).save_to_disk(str(tmp_path / "hfset"))
    columns = {
        "speech": {"column": "mfcc", "kind": "sequence"},
        "words": {"column": "ids", "kind": "tokens", "vocab_size": 20},
        "meta": {"column": "meta", "kind": "vector"},
    }
    dm = HFDataModule(str(tmp_path / "hfset"), columns=columns, target_column="y", **loader_kwargs(tmp_path))
    assert dm.describe().modalities["speech"].shape == (None, 5) and dm.describe().modalities["meta"].shape == (3,)
    assert dm.describe().target.num_outputs == 3
    dm.setup()
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [27, 3, 10]
    batch = next(iter(dm.train_dataloader()))
    assert batch["inputs"]["words"].x.dtype == torch.int64 and batch["inputs"]["speech"].lengths is not None
    with pytest.raises(ConfigError, match=r"no column\(s\) \['nope'\]"):
        HFDataModule(
            str(tmp_path / "hfset"),
            columns={"a": {"column": "nope", "kind": "vector"}},
            target_column="y",
            **loader_kwargs(tmp_path / "2"),
        ).prepare_data()


# ---- every datamodule trains through the CLI path ---------------------------------------------
@pytest.mark.slow  # trains or builds a dataset for over a second
def test_each_dataset_trains_end_to_end(tmp_path: Path):
    av = write_avmnist(tmp_path / "avmnist", n_train=40)
    mosi = tmp_path / "mosi.pkl"
    write_affect(mosi, "mmsa", aligned=False)
    imdb = write_mmimdb(tmp_path / "mmimdb.hdf5")
    runs = {
        "avmnist": ["data=avmnist", f"data.data_dir={av}", "data.val_size=10", "data.batch_size=8"],
        "mosi": ["data=mosi", f"data.path={mosi}", "fusion=late", "data.batch_size=8"],
        "mmimdb": ["data=mmimdb", f"data.path={imdb}", "data.split_ends=[40,50,60]", "data.batch_size=8"],
    }
    expected = {
        "avmnist": {"test/acc", "test/f1_macro"},
        "mmimdb": {"test/f1_micro", "test/f1_macro"},
        "mosi": {
            "test/mae",
            "test/corr",
            "test/acc7",
            "test/acc5",
            "test/acc2",
            "test/f1",
            "test/acc2_has0",
            "test/f1_has0",
        },
    }
    for name, overrides in runs.items():
        summary = train(compose_train([*overrides, *FAST], output_dir=tmp_path / name))
        assert summary["status"] == "completed", name
        assert expected[name] <= set(summary["metrics"]), (name, sorted(summary["metrics"]))
    # every classification run writes its confusion (per label for multilabel) and a per-class table
    assert (tmp_path / "avmnist" / "confusion_matrix.csv").exists()
    labels = (tmp_path / "mmimdb" / "confusion_per_label.csv").read_text().splitlines()
    assert labels[0] == "label,tn,fp,fn,tp" and len(labels) == 24 and labels[1].startswith("drama,")
    imdb = json.loads((tmp_path / "mmimdb" / "summary.json").read_text())
    assert len(imdb["per_class"]) == 23 and set(imdb["per_class"]["drama"]) == {"precision", "recall", "f1", "support"}


def test_normalisation_uses_the_train_split_only(tmp_path: Path):
    root = write_avmnist(tmp_path / "avmnist")
    dm = AVMNISTDataModule(str(root), val_size=10, normalize=True, **loader_kwargs(tmp_path))
    dm.setup()
    train_images = np.load(root / "image" / "train_data.npy")[:30] / 255.0  # the first 30 are train
    mean, std = dm.normalization_stats()["image"]
    assert mean.shape == (1, 1, 1)
    assert float(mean.squeeze()) == pytest.approx(train_images.mean(), rel=1e-4)
    assert float(std.squeeze()) == pytest.approx(train_images.std(), rel=1e-3)
    x = torch.cat([b["inputs"]["image"].x for b in dm.train_dataloader()])
    assert float(x.mean()) == pytest.approx(0.0, abs=1e-4) and float(x.std()) == pytest.approx(1.0, abs=1e-2)


def test_fast_arrow_batches_equal_the_datasets_formatting(tmp_path: Path):
    from fuselab.data.arrow import ArrowSplit
    from fuselab.data.datasets.synthetic import SyntheticDataModule

    write_affect(tmp_path / "mosi.pkl", "mmsa", aligned=False)
    modules = [
        SyntheticDataModule(train_size=64, val_size=8, test_size=8, **loader_kwargs(tmp_path / "s")),
        AVMNISTDataModule(str(write_avmnist(tmp_path / "av")), val_size=10, **loader_kwargs(tmp_path / "a")),
        AffectDataModule(str(tmp_path / "mosi.pkl"), **loader_kwargs(tmp_path / "m")),
        MMIMDbDataModule(
            str(write_mmimdb(tmp_path / "i.hdf5", images=True)),
            image_source="images",
            split_ends=(40, 50, 60),
            **loader_kwargs(tmp_path / "i"),
        ),
    ]
    for dm in modules:
        dm.setup()
        fast, slow = ArrowSplit(dm.splits["train"], dm.describe().modalities), ArrowSplit(dm.splits["train"])
        assert fast.fast and not slow.fast
        a, b = dm.collate()(fast.__getitems__([5, 0, 3])), dm.collate()(slow.__getitems__([5, 0, 3]))
        assert fast.fast, f"{dm.name}: fell back to the slow path"
        for m in a["inputs"]:
            assert torch.equal(a["inputs"][m].x, b["inputs"][m].x), (dm.name, m)
            assert (a["inputs"][m].lengths is None) == (b["inputs"][m].lengths is None)
            if a["inputs"][m].lengths is not None:
                assert torch.equal(a["inputs"][m].lengths, b["inputs"][m].lengths)
        assert torch.equal(a["target"], b["target"]), dm.name
