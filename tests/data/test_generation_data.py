"""Generation data: the synthetic benchmark, token targets, reference texts."""

from __future__ import annotations

import numpy as np
import torch

from fuselab.data.collate import token_targets
from fuselab.data.datasets.synthetic_generation import SyntheticGenerationDataModule
from fuselab.data.specs import BOS_ID, EOS_ID, PAD_ID, DataDescription

SMALL = dict(train_size=64, val_size=16, test_size=16, batch_size=8, eval_batch_size=8)


def test_token_targets_frame_each_sequence():
    t = token_targets([np.array([5, 6]), np.array([], dtype=np.int64), np.array([4, 4, 4])])
    assert t.tolist() == [
        [BOS_ID, 5, 6, EOS_ID, PAD_ID],
        [BOS_ID, EOS_ID, PAD_ID, PAD_ID, PAD_ID],
        [BOS_ID, 4, 4, 4, EOS_ID],
    ]


def test_synthetic_generation_is_deterministic(tmp_path):
    a = SyntheticGenerationDataModule(**SMALL, cache_dir=str(tmp_path / "a")).build(tmp_path)
    b = SyntheticGenerationDataModule(**SMALL, cache_dir=str(tmp_path / "b")).build(tmp_path)
    for split in ("train", "test"):
        x, y = a.splits[split].with_format("numpy"), b.splits[split].with_format("numpy")
        assert all(np.array_equal(p, q) for p, q in zip(x["label"], y["label"]))
        assert np.array_equal(x["image"], y["image"])
    c = SyntheticGenerationDataModule(**SMALL, seed=1, cache_dir=str(tmp_path / "c")).build(tmp_path)
    assert not np.array_equal(
        a.splits["train"].with_format("numpy")["image"], c.splits["train"].with_format("numpy")["image"]
    )


def test_each_modality_hides_a_different_symbol(tmp_path):
    p = SyntheticGenerationDataModule(**SMALL, noise=0.0, cache_dir=str(tmp_path)).build(tmp_path)
    rows = p.splits["train"].with_format("numpy")
    protos = {}
    for label, image, hid_img, hid_aud in zip(rows["label"], rows["image"], rows["hidden_image"], rows["hidden_audio"]):
        n = len(label)
        if n < 2:
            assert hid_img == hid_aud == -1
            continue
        assert hid_img != hid_aud and 0 <= hid_img < n and 0 <= hid_aud < n
        # without noise each visible slot is exactly its symbol's prototype; the hidden one is not
        for i, sym in enumerate(label):
            patch = image[0, :, 8 * i : 8 * (i + 1)]
            if i == hid_img:
                continue
            if sym in protos:
                assert np.allclose(protos[sym], patch)
            protos[sym] = patch
    for label, image, hid_img in zip(rows["label"], rows["image"], rows["hidden_image"]):
        if hid_img >= 0 and label[hid_img] in protos:
            assert not np.allclose(protos[label[hid_img]], image[0, :, 8 * hid_img : 8 * (hid_img + 1)])


def test_loader_yields_token_targets(tmp_path):
    dm = SyntheticGenerationDataModule(**SMALL, cache_dir=str(tmp_path))
    d = dm.describe()
    assert isinstance(d, DataDescription) and d.target.is_generation and d.target.vocabulary[4] == "zero"
    batch = next(iter(dm.train_dataloader()))
    target = batch["target"]
    assert target.dtype == torch.int64 and (target[:, 0] == BOS_ID).all()
    assert ((target == EOS_ID).sum(1) == 1).all()
    assert batch["inputs"]["audio"].x.shape[0] == 8 and batch["inputs"]["image"].x.shape[1:] == (1, 8, 40)
