"""Encoders configured per modality (model.encoders.modalities) and the AV-MNIST LeNet preset."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
from conftest import compose_train
from fixtures_data import write_avmnist
from torch import nn

from fuselab.config.validate import validate_train_config
from fuselab.data.specs import ModalityBatch, ModalitySpec
from fuselab.errors import ConfigError
from fuselab.models.encoders import EncoderFactory, ImageEncoder
from fuselab.models.recurrent import RecurrentEncoder
from fuselab.runs.job import train_job

RNN = partial(RecurrentEncoder, cell="gru", hidden_size=8)
# MultiBench's LeNet(1, 6, 3): conv 5x5 (no bias) 1->6, then 3x3 convs 6->12->24->48, BN after each
LENET_IMAGE = dict(channels=[6, 12, 24, 48], kernel_sizes=[5, 3, 3, 3], norm="batch", pool_last=True, grid_pool=1)
LENET_IMAGE_PARAMS = (1 * 6 * 25 + 2 * 6) + (6 * 12 * 9 + 2 * 12) + (12 * 24 * 9 + 2 * 24) + (24 * 48 * 9 + 2 * 48)


def batch(shape: tuple[int, ...], n: int = 4) -> ModalityBatch:
    return ModalityBatch(torch.randn(n, *shape), None, torch.ones(n, dtype=torch.bool))


def test_each_modality_gets_its_own_image_encoder():
    f = EncoderFactory(RNN, static_dim=20, modalities={"image": {**LENET_IMAGE, "project": False}})
    lenet = f(ModalitySpec("image", "image", (1, 28, 28)))
    default = f(ModalitySpec("audio", "image", (1, 112, 112)))
    assert lenet(batch((1, 28, 28))).shape == (4, 48) and lenet.out_dim == 48
    assert sum(p.numel() for p in lenet.parameters()) == LENET_IMAGE_PARAMS
    assert sum(isinstance(m, nn.BatchNorm2d) for m in lenet.modules()) == 4
    assert all(m.bias is None for m in lenet.modules() if isinstance(m, nn.Conv2d))
    # the other modality keeps the top-level settings: two conv blocks with bias, projected to static_dim
    assert default(batch((1, 112, 112))).shape == (4, 20)
    assert [m.out_channels for m in default.modules() if isinstance(m, nn.Conv2d)] == [16, 32]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in default.modules())


def test_image_encoder_grid_memory_follows_the_last_block():
    enc = ImageEncoder(ModalitySpec("image", "image", (1, 28, 28)), 16, channels=[4, 8], kernel_sizes=[5, 3])
    mem = enc.memory(batch((1, 28, 28)))  # one 2x2 pool between the two blocks
    assert mem.items.shape == (4, 14 * 14, 8) and mem.layout == ("grid", 14, 14)
    x = batch((1, 28, 28))
    assert torch.allclose(enc.memory(x).pooled, enc(x))


def test_per_modality_rnn_and_embedding_settings():
    f = EncoderFactory(RNN, embed_dim=6, modalities={"text": {"embed_dim": 10, "rnn": {"hidden_size": 5}}})
    text = f(ModalitySpec("text", "tokens", (None,), vocab_size=50))
    other = f(ModalitySpec("codes", "tokens", (None,), vocab_size=50))
    assert text.steps.out_dim == 10 and text.out_dim == 5
    assert other.steps.out_dim == 6 and other.out_dim == 8
    assert f.steps(ModalitySpec("text", "tokens", (None,), vocab_size=50)).out_dim == 10
    vec = EncoderFactory(RNN, modalities={"v": {"hidden": 7, "out_dim": 3}})(ModalitySpec("v", "vector", (5,)))
    assert vec(ModalityBatch(torch.randn(2, 5), None, torch.ones(2, dtype=torch.bool))).shape == (2, 3)


def test_settings_for_a_missing_modality_or_a_wrong_key_are_refused():
    specs = {
        "image": ModalitySpec("image", "image", (1, 28, 28)),
        "audio": ModalitySpec("audio", "sequence", (None, 4)),
    }
    with pytest.raises(
        ConfigError, match=r"modalities.imgae: the data has no modality 'imgae' \(it has \['audio', 'image'\]\)"
    ):
        EncoderFactory(RNN, modalities={"imgae": {"norm": "batch"}}).check(specs)
    with pytest.raises(ConfigError, match=r"modalities.audio: \['channels'\] do not apply to a sequence modality"):
        EncoderFactory(RNN, modalities={"audio": {"channels": [4]}}).check(specs)
    with pytest.raises(ValueError, match="2 kernel sizes for 3 conv blocks"):
        ImageEncoder(specs["image"], 8, channels=[2, 4, 8], kernel_sizes=[3, 3])
    with pytest.raises(ValueError, match="norm='layer' is not one of"):
        ImageEncoder(specs["image"], 8, norm="layer")


def test_avmnist_lenet_preset_builds_multibench_encoders_and_trains(tmp_path: Path):
    root = write_avmnist(tmp_path / "avmnist", n_train=40, n_test=12)
    cfg = compose_train(
        ["experiment=avmnist_lenet", f"data.data_dir={root}", "data.val_size=10", "data.batch_size=8", "debug=fast"],
        output_dir=tmp_path / "run",
    )
    validate_train_config(cfg)
    assert cfg.model.optimizer._target_ == "torch.optim.SGD" and cfg.model.optimizer.lr == 0.1
    summary = train_job(cfg)
    assert summary["status"] == "completed" and "test/acc" in summary["metrics"]
    model = torch.load(next((tmp_path / "run" / "checkpoints").glob("*.ckpt")), weights_only=False)["state_dict"]
    image = {k: v for k, v in model.items() if ".encoders.image." in k and not k.endswith("num_batches_tracked")}
    audio_convs = [v for k, v in model.items() if ".encoders.audio." in k and v.ndim == 4]
    assert sum(v.numel() for k, v in image.items() if "running" not in k) == LENET_IMAGE_PARAMS
    assert [v.shape[0] for v in audio_convs] == [6, 12, 24, 48, 96, 192]


# ---- video: a shared per-frame CNN, then the recurrent encoder ----------------------------------
def video_batch(lengths: list[int], frame=(1, 12, 12), seed: int = 0) -> ModalityBatch:
    g = torch.Generator().manual_seed(seed)
    t = max(lengths)
    x = torch.zeros(len(lengths), t, frame[0] * frame[1] * frame[2])
    for i, n in enumerate(lengths):
        x[i, :n] = torch.rand(n, x.shape[-1], generator=g)
    return ModalityBatch(x, torch.tensor(lengths), torch.ones(len(lengths), dtype=torch.bool))


def test_video_encoder_shapes_and_padding_invariance_over_time():
    spec = ModalitySpec("clip", "video", (None, 1, 12, 12))
    f = EncoderFactory(RNN, static_dim=10, modalities={"clip": {"channels": [4, 8], "rnn": {"hidden_size": 6}}})
    enc = f(spec).eval()
    mb = video_batch([5, 3, 1])
    assert enc.steps(mb.x, mb.lengths).shape == (3, 5, 10) and enc(mb).shape == (3, 6)
    assert not enc.steps(mb.x, mb.lengths)[1, 3:].any()  # padded frames are never encoded
    # a clip alone, unpadded, encodes exactly as inside a padded batch
    alone = ModalityBatch(mb.x[1:2, :3], mb.lengths[1:2], mb.present[1:2])
    torch.testing.assert_close(enc(alone)[0], enc(mb)[1], atol=1e-6, rtol=1e-6)
    longer = ModalityBatch(torch.cat([mb.x, torch.rand(3, 4, 144)], 1), mb.lengths, mb.present)
    torch.testing.assert_close(enc(longer), enc(mb), atol=1e-6, rtol=1e-6)  # garbage after the end is ignored
    mem = enc.memory(mb)
    assert mem.items.shape == (3, 5, 6) and mem.mask.tolist()[2] == [True, False, False, False, False]
    with pytest.raises(ConfigError, match=r"\['embed_dim'\] do not apply to a video modality"):
        EncoderFactory(RNN, modalities={"clip": {"embed_dim": 3}}).check({"clip": spec})
