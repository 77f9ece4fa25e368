"""The packaged ImageNet CNN (backbone: efficientnet_lite0): its weights load offline and name
known photographs' ImageNet classes; as an encoder it is frozen or fine-tuned; as encode_with
its pooled features are cached at preparation."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures_data import write_folder

from fuselab.data.readers.images import image_of
from fuselab.data.readers.packaged_cnn import PACKAGED, load_packaged
from fuselab.data.specs import ModalityBatch, ModalitySpec
from fuselab.errors import ConfigError
from fuselab.models.encoders import EncoderFactory
from fuselab.models.pretrained import ImageBackbone

LITE = PACKAGED["efficientnet_lite0"]
# photographs shipped inside scikit-image (skimage/data), each with the ImageNet classes it shows
KNOWN = {
    "chelsea.png": {281, 282, 283, 284, 285},  # a tabby cat: tabby, tiger, Persian, Siamese, Egyptian cat
    "coffee.png": {967},  # espresso
    "rocket.jpg": {657},  # missile
    "motorcycle_left.png": {665, 670},  # moped, motor scooter
}


def known_image(name: str) -> Path:
    """A photograph of scikit-image's (the dev extra installs it; the packages are the
    pretrained extra's: a missing one fails here, never skips)."""
    path = Path(str(importlib.resources.files("skimage") / "data" / name))
    assert path.is_file(), f"scikit-image {name} is missing: reinstall the dev extra (make install)"
    return path


def test_imagenet_top1_of_known_photographs_through_the_image_reader():
    model = load_packaged("efficientnet_lite0").eval()
    settings = {"size": LITE["size"], "channels": 3, "mean": LITE["mean"], "std": LITE["std"], "crop": "center"}
    x = torch.as_tensor(np.stack([image_of(known_image(n), Path("."), settings) for n in KNOWN]))
    with torch.no_grad():
        top1 = model.logits(x).argmax(-1).tolist()
    for (name, classes), got in zip(KNOWN.items(), top1, strict=True):
        assert got in classes, f"{name}: top-1 class {got}, expected one of {sorted(classes)}"


def test_the_packaged_cnn_as_an_encoder_frozen_or_fine_tuned():
    spec = ModalitySpec("photo", "image", (3, 64, 64))
    enc = EncoderFactory(lambda **kw: None, modalities={"photo": {"backbone": "efficientnet_lite0"}})(spec)
    assert isinstance(enc, ImageBackbone) and enc.out_dim == 1280
    assert not any(p.requires_grad for p in enc.parameters())
    mb = ModalityBatch(torch.rand(2, 3, 64, 64), None, torch.ones(2, dtype=torch.bool))
    enc.train()  # frozen: batch norms stay in eval mode, the same features every call
    assert torch.equal(enc(mb), enc(mb))
    mem = enc.memory(mb)
    assert mem.items.shape == (2, 4, 1280) and mem.layout == ("grid", 2, 2)
    tuned = ImageBackbone(spec, "efficientnet_lite0", train_layers=2)
    trainable = [n for n, p in tuned.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith(("model.net._blocks.14.", "model.net._blocks.15.")) for n in trainable)
    tuned(mb).sum().backward()
    assert all(p.grad is not None for p in tuned.parameters() if p.requires_grad)
    with pytest.raises(ConfigError, match="reads 3-channel images; the 'photo' images have 1"):
        ImageBackbone(ModalitySpec("photo", "image", (1, 64, 64)), "efficientnet_lite0")
    with pytest.raises(ConfigError, match="or a packaged ImageNet CNN: efficientnet_lite0"):
        ImageBackbone(spec, "efficientnet_lite9")


@pytest.mark.slow  # builds a dataset through the CNN
def test_encode_with_the_packaged_cnn_caches_its_pooled_features(tmp_path: Path):
    from fuselab.data.datasets.hf import HFDataModule

    root = write_folder(tmp_path / "raw")
    settings = {"column": "photo", "kind": "image", "size": 64, "channels": 3, "mean": LITE["mean"], "std": LITE["std"]}
    columns = {"image": {**settings, "encode_with": {"backbone": "efficientnet_lite0"}}}
    dm = HFDataModule(str(root), columns=columns, cache_dir=str(tmp_path / "cache"), batch_size=4)
    assert dm.describe().modalities["image"].shape == (1280,)
    dm.setup()
    assert "image" not in dm.prepared_marker()["stores"]  # the features replace the pictures
    got = np.asarray(dm.rows("test", [0])["image"][0])
    photo = image_of(
        pd.read_parquet(root / "test.parquet")["photo"][0],
        root,
        {k: v for k, v in settings.items() if k not in ("column", "kind")},
    )
    with torch.no_grad():
        want = load_packaged("efficientnet_lite0").eval()(pixel_values=torch.as_tensor(photo[None])).pooler_output
    np.testing.assert_allclose(got, want[0].numpy(), atol=1e-4)
