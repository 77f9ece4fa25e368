"""The data contract: specs, padding, present masks, the synthetic benchmark and its cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fuselab.data.collate import PaddedCollate, present_column
from fuselab.data.datasets.synthetic import SyntheticDataModule
from fuselab.data.specs import ModalitySpec, TargetSpec

SMALL = dict(train_size=200, val_size=50, test_size=50)


def make_dm(tmp_path: Path, **kwargs) -> SyntheticDataModule:
    return SyntheticDataModule(**{**SMALL, **kwargs}, cache_dir=str(tmp_path / "cache"), batch_size=16)


def test_spec_checks_kind_and_shape():
    with pytest.raises(ValueError, match="kind 'point_cloud' is not one of"):
        ModalitySpec("p", "point_cloud", (3,))
    with pytest.raises(ValueError, match="needs a shape of 4 dims"):
        ModalitySpec("v", "video", (3,))
    with pytest.raises(ValueError, match="needs a shape of 3 dims"):
        ModalitySpec("i", "image", (28, 28))
    with pytest.raises(ValueError, match="needs vocab_size"):
        ModalitySpec("t", "tokens", (None,))
    spec = ModalitySpec("t", "tokens", (None,), vocab_size=10)
    assert ModalitySpec.from_dict(spec.to_dict()) == spec


def test_collate_pads_and_reports_lengths_and_presence():
    specs = {
        "s": ModalitySpec("s", "sequence", (None, 2)),
        "t": ModalitySpec("t", "tokens", (None,), vocab_size=9),
        "v": ModalitySpec("v", "vector", (3,)),
    }
    columns = {
        "s": [np.ones((3, 2)), np.ones((1, 2))],
        "t": [np.array([1, 2]), np.array([], dtype=np.int64)],
        "v": np.zeros((2, 3)),
        present_column("v"): [True, False],
        "label": [0, 1],
    }
    batch = PaddedCollate(specs, TargetSpec("multiclass", 2))(columns)
    s, t, v = (batch["inputs"][m] for m in "stv")
    assert s.x.shape == (2, 3, 2) and s.lengths.tolist() == [3, 1] and s.x[1, 1:].abs().sum() == 0
    # an empty sequence is absent, with a valid dummy length for packing
    assert t.lengths.tolist() == [2, 1] and t.present.tolist() == [True, False]
    assert t.x.dtype == torch.int64
    assert v.lengths is None and v.present.tolist() == [True, False]
    assert batch["target"].tolist() == [0, 1]


def test_synthetic_is_deterministic_from_its_seed(tmp_path: Path):
    a = make_dm(tmp_path / "a", seed=3)
    b = make_dm(tmp_path / "b", seed=3)
    c = make_dm(tmp_path / "c", seed=4)
    a.setup(), b.setup(), c.setup()
    assert np.array_equal(a.split_labels("train"), b.split_labels("train"))
    assert np.allclose(a.splits["train"][0]["signal"][0], b.splits["train"][0]["signal"][0])
    assert not np.array_equal(a.split_labels("train"), c.split_labels("train"))


def test_synthetic_batches_follow_the_contract(tmp_path: Path):
    dm = make_dm(tmp_path, aligned=False)
    batch = next(iter(dm.train_dataloader()))
    sig, tok, img = (batch["inputs"][m] for m in ("signal", "tokens", "image"))
    assert sig.x.dtype == torch.float32 and sig.x.shape[0] == 16 and sig.x.shape[2] == 8
    assert tok.x.dtype == torch.int64 and tok.lengths is not None
    assert img.x.shape == (16, 1, 16, 16) and img.lengths is None
    assert batch["target"].shape == (16,)
    assert dm.describe().target == TargetSpec("multiclass", 4, ("0", "1", "2", "3"))
    assert not torch.equal(sig.lengths, tok.lengths)  # unaligned: own lengths


def test_aligned_sequences_share_lengths(tmp_path: Path):
    dm = make_dm(tmp_path, aligned=True)
    batch = next(iter(dm.train_dataloader()))
    assert torch.equal(batch["inputs"]["signal"].lengths, batch["inputs"]["tokens"].lengths)
    assert dm.describe().aligned


def test_modalities_subset_and_unknown_name(tmp_path: Path):
    dm = make_dm(tmp_path, modalities=["image", "signal"])
    assert list(dm.describe().modalities) == ["image", "signal"]
    assert set(next(iter(dm.val_dataloader()))["inputs"]) == {"image", "signal"}
    with pytest.raises(
        ValueError, match=r"\['audio'\] not in dataset 'synthetic'. It has: \['signal', 'tokens', 'image'\]"
    ):
        make_dm(tmp_path, modalities=["signal", "audio"])


def test_preparation_is_cached_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    dm = make_dm(tmp_path)
    dm.prepare_data()
    assert dm.is_prepared()
    again = make_dm(tmp_path)
    monkeypatch.setattr(SyntheticDataModule, "build", lambda self: pytest.fail("rebuilt a prepared dataset"))
    again.prepare_data()
    again.setup()
    assert len(again.splits["train"]) == 200
    other = make_dm(tmp_path, noise=0.9)
    assert other.prepared_dir() != dm.prepared_dir()  # a different setting is a different cache entry


def _nearest_prototype(signal: np.ndarray, k: int, protos: np.ndarray) -> int:
    # the event type seen most in the sequence: project steps on the class patterns
    scores = signal @ protos.T  # (T, K)
    return int(np.bincount(scores.argmax(1)[scores.max(1) > 4], minlength=k).argmax())


@pytest.mark.parametrize("interaction", ["redundant", "synergy", "unique"])
def test_interactions_have_their_known_structure(tmp_path: Path, interaction: str):
    from fuselab.data.datasets import synthetic

    dm = make_dm(tmp_path, interaction=interaction, noise=0.3, train_size=400, distractors=0)
    rng = np.random.default_rng(dm.params["seed"])
    protos = synthetic._prototypes(rng, dm.params)["signal"]
    dm.setup()
    rows = dm.splits["train"][:400]
    y = rows["label"]
    decoded = np.array([_nearest_prototype(s, 4, protos) for s in rows["signal"]])
    agree = float((decoded == y).mean())
    if interaction in ("redundant", "unique"):
        assert agree > 0.9  # signal alone tells the label
    else:
        assert agree < 0.4  # signal alone is at chance (0.25) for synergy


def test_temporal_label_is_the_last_event(tmp_path: Path):
    from fuselab.data.datasets import synthetic

    dm = make_dm(tmp_path, interaction="temporal", noise=0.2)
    protos = synthetic._prototypes(np.random.default_rng(dm.params["seed"]), dm.params)["signal"]
    dm.setup()
    rows = dm.splits["train"][:100]
    for s, y in zip(rows["signal"], rows["label"]):
        scores = s @ protos.T
        assert scores[-1].argmax() == y and scores[-1].max() > 5  # the final step is the label's event
        assert 4 <= int((scores.max(1) > 5).sum()) <= 8  # after 3 to 7 events of random types


def test_loader_workers_and_pinned_memory(tmp_path: Path):
    dm = SyntheticDataModule(**SMALL, cache_dir=str(tmp_path / "cache"), batch_size=16, num_workers=2, pin_memory=True)
    first = [next(iter(dm.val_dataloader())) for _ in range(2)]
    assert torch.equal(first[0]["target"], first[1]["target"])  # workers keep the order
    serial = SyntheticDataModule(**SMALL, cache_dir=str(tmp_path / "cache"), batch_size=16)
    assert torch.equal(next(iter(serial.val_dataloader()))["inputs"]["signal"].x, first[0]["inputs"]["signal"].x)


def test_two_preparations_of_one_dataset_take_turns(tmp_path: Path):
    import threading

    from fuselab.data.datasets.synthetic import SyntheticDataModule

    builds = []

    class Counting(SyntheticDataModule):
        def build(self, scratch):
            assert scratch.is_dir()  # this preparation's own folder
            builds.append((threading.get_ident(), scratch))
            return super().build(scratch)

    modules = [Counting(train_size=64, val_size=16, test_size=16, cache_dir=str(tmp_path)) for _ in range(2)]
    threads = [threading.Thread(target=dm.prepare_data) for dm in modules]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(builds) == 1 and all(dm.is_prepared() for dm in modules)
    assert not builds[0][1].exists()  # the scratch folder is removed afterwards


def test_a_datamodule_whose_build_takes_no_scratch_still_prepares(tmp_path: Path):
    from fuselab.data.datasets.synthetic import SyntheticDataModule

    class Old(SyntheticDataModule):  # written for fuselab <= 0.2
        def build(self):
            return super().build(tmp_path / "unused")

    dm = Old(train_size=32, val_size=8, test_size=8, cache_dir=str(tmp_path / "cache"))
    assert dm.describe().target.num_outputs == 4 and dm.is_prepared()


def test_regression_variant_gives_float_targets(tmp_path: Path):
    from fuselab.data.datasets.synthetic import SyntheticDataModule

    dm = SyntheticDataModule(regression=True, train_size=32, val_size=8, test_size=8, cache_dir=str(tmp_path))
    assert dm.describe().target == TargetSpec("regression", 1)
    batch = next(iter(dm.test_dataloader()))
    assert batch["target"].dtype == torch.float32 and batch["target"].shape == (8, 1)
    assert set(batch["target"].flatten().tolist()) <= {0.0, 1.0, 2.0, 3.0}
