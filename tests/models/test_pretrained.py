"""The pretrained text encoder (packaged all-MiniLM-L6-v2, loaded offline): frozen or partly
fine-tuned, as steps for the RNN or as a pooled vector, and trained end to end through data=hf."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("all_minilm_l6_v2")

from conftest import FAST, compose_train  # noqa: E402
from fixtures_data import write_folder, write_reviews  # noqa: E402

from fuselab.data.readers.text import load_tokenizer  # noqa: E402
from fuselab.data.specs import ModalityBatch, ModalitySpec  # noqa: E402
from fuselab.errors import ConfigError  # noqa: E402
from fuselab.models.encoders import EncoderFactory, TemporalEncoder  # noqa: E402
from fuselab.models.pretrained import PooledTextEncoder, PretrainedSteps  # noqa: E402
from fuselab.models.recurrent import RecurrentEncoder  # noqa: E402
from fuselab.runs.job import train_job  # noqa: E402

SENTENCES = ["a quiet film with a loud ending", "good", "the plot was long and the music short"]


def batch(tok) -> ModalityBatch:
    ids = [tok.encode(s).ids for s in SENTENCES]
    x = torch.zeros(len(ids), max(map(len, ids)), dtype=torch.long)
    for i, row in enumerate(ids):
        x[i, : len(row)] = torch.tensor(row)
    return ModalityBatch(x, torch.tensor([len(r) for r in ids]), torch.ones(len(ids), dtype=torch.bool))


def test_minilm_loads_offline_and_frozen_outputs_repeat_across_loads():
    tok = load_tokenizer("minilm")
    mb = batch(tok)
    assert tok.encode("good").tokens == ["[CLS]", "good", "[SEP]"]
    first, second = PretrainedSteps("text", "minilm"), PretrainedSteps("text", "minilm")
    first.train(), second.train()  # frozen: dropout stays off even in train mode
    a, b = first(mb.x, mb.lengths), second(mb.x, mb.lengths)
    assert a.shape == (3, mb.x.shape[1], 384) and torch.equal(a, b)
    assert not any(p.requires_grad for p in first.parameters()) and not a.requires_grad
    # padding never changes a sample's outputs: the short sentence alone gives the same
    alone = first(mb.x[1:2, : int(mb.lengths[1])], mb.lengths[1:2])
    torch.testing.assert_close(alone[0], a[1, : int(mb.lengths[1])], atol=1e-5, rtol=1e-5)


def test_pooled_vector_matches_sentence_transformers_embedding():
    from sentence_transformers import SentenceTransformer

    from fuselab.data.readers.pretrained_files import resolve_model_dir

    tok = load_tokenizer("minilm")
    pooled = PooledTextEncoder(PretrainedSteps("text", "minilm"))(batch(tok))
    reference = SentenceTransformer(str(resolve_model_dir("minilm")), device="cpu").encode(
        SENTENCES, convert_to_tensor=True
    )
    torch.testing.assert_close(torch.nn.functional.normalize(pooled, dim=-1), reference.cpu(), atol=1e-4, rtol=1e-4)


def test_train_layers_choose_what_fine_tunes():
    top2 = PretrainedSteps("text", "minilm", train_layers=2)
    trainable = {n.split(".")[3] for n, p in top2.named_parameters() if p.requires_grad and ".layer." in n}
    assert trainable == {"4", "5"} and not top2.model.embeddings.word_embeddings.weight.requires_grad
    every = PretrainedSteps("text", "minilm", train_layers=-1)
    assert all(p.requires_grad for p in every.parameters()) and not every.frozen


def test_factory_builds_sequence_and_pooled_encoders_and_refuses_other_kinds():
    spec = ModalitySpec("text", "tokens", (None,), vocab_size=30522)
    rnn = lambda **kw: RecurrentEncoder(cell="gru", hidden_size=8, **kw)  # noqa: E731
    seq = EncoderFactory(rnn, modalities={"text": {"pretrained": "minilm"}})(spec)
    assert isinstance(seq, TemporalEncoder) and isinstance(seq.steps, PretrainedSteps) and seq.out_dim == 8
    pooled = EncoderFactory(rnn, modalities={"text": {"pretrained": "minilm", "pretrained_output": "pooled"}})(spec)
    assert isinstance(pooled, PooledTextEncoder) and pooled.out_dim == 384
    with pytest.raises(ConfigError, match="a pretrained encoder reads tokens"):
        EncoderFactory(rnn, modalities={"a": {"pretrained": "minilm"}}).steps(ModalitySpec("a", "sequence", (None, 3)))
    with pytest.raises(ConfigError, match="no config.json there; give a local model folder"):
        PretrainedSteps("text", "/nonexistent/model")


@pytest.mark.slow
@pytest.mark.parametrize("train_layers", [0, 1])
def test_minilm_feeds_a_gru_through_data_hf_frozen_or_top_layer_tuned(tmp_path: Path, train_layers: int):
    root = write_reviews(tmp_path / "reviews", n=32)
    columns = "{review: {column: review, kind: text, tokenizer: minilm}, stats: {column: stats, kind: vector}}"
    cfg = compose_train(
        [
            "data=hf",
            f"data.source={root}",
            f"data.columns={columns}",
            "data.batch_size=16",
            *FAST,
            f"model.encoders.modalities={{review: {{pretrained: minilm, train_layers: {train_layers}}}}}",
        ],
        output_dir=tmp_path / "run",
    )
    summary = train_job(cfg)
    assert summary["status"] == "completed"
    state = torch.load(summary["last_checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    fresh = PretrainedSteps("review", "minilm").model.state_dict()

    def same(name: str) -> bool:
        key = next(k for k in state if k.endswith(f"review.steps.model.{name}"))
        return torch.equal(state[key], fresh[name])

    assert same("encoder.layer.4.output.dense.weight")  # below the tuned layers: as loaded
    assert same("encoder.layer.5.output.dense.weight") == (train_layers == 0)  # the top layer trains when asked
    minilm = sum(v.numel() for v in fresh.values())
    top_layer = sum(v.numel() for k, v in fresh.items() if k.startswith("encoder.layer.5."))
    frozen = summary["num_parameters"] - summary["trainable_parameters"]
    assert frozen == minilm - (top_layer if train_layers == 1 else 0)  # counted and written to summary.json


# ---- image backbones (random weights, saved to a local folder as a user's model would be) --------
def backbone_weights(folder: Path) -> dict:
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(folder), local_files_only=True).state_dict()


def save_backbone(kind: str, root: Path) -> Path:
    from transformers import CLIPVisionConfig, CLIPVisionModel, ResNetConfig, ResNetModel, ViTConfig, ViTModel

    if kind == "resnet":
        model = ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"))
    elif kind == "vit":
        config = ViTConfig(
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=32,
            image_size=32,
            patch_size=16,  # a 2x2 grid: items and width differ, as they do in real models
        )
        model = ViTModel(config, add_pooling_layer=False)
    else:
        config = CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        )
        model = CLIPVisionModel(config)
    model.save_pretrained(root / kind)
    return root / kind


@pytest.mark.parametrize("kind,grid,dim", [("resnet", (4, 4), 16), ("vit", (2, 2), 16), ("clip", (4, 4), 16)])
def test_image_backbones_load_from_a_folder_with_their_grid(tmp_path: Path, kind: str, grid: tuple, dim: int):
    from fuselab.models.pretrained import ImageBackbone

    folder = save_backbone(kind, tmp_path)
    spec = ModalitySpec("photo", "image", (3, 32, 32))
    enc = EncoderFactory(lambda **kw: None, modalities={"photo": {"backbone": str(folder)}})(spec)
    assert isinstance(enc, ImageBackbone) and enc.out_dim == dim
    mb = ModalityBatch(torch.rand(2, 3, 32, 32), None, torch.ones(2, dtype=torch.bool))
    enc.train()
    first, second = enc(mb), ImageBackbone(spec, str(folder))(mb)
    assert first.shape == (2, dim) and torch.allclose(first, second, atol=1e-5)  # frozen: eval mode, same weights
    mem = enc.memory(mb)
    assert mem.items.shape == (2, grid[0] * grid[1], dim) and mem.layout == ("grid", *grid)
    assert not any(p.requires_grad for p in enc.parameters())
    tuned = ImageBackbone(spec, str(folder), train_layers=1)
    assert any(p.requires_grad for p in tuned.parameters()) and not all(p.requires_grad for p in tuned.parameters())


def test_image_backbone_errors_name_the_setting(tmp_path: Path):
    from fuselab.models.pretrained import ImageBackbone

    folder = save_backbone("resnet", tmp_path)
    with pytest.raises(ConfigError, match=r"backbone=.* reads 3-channel images; the 'photo' images have 1"):
        ImageBackbone(ModalitySpec("photo", "image", (1, 32, 32)), str(folder))
    with pytest.raises(ConfigError, match="no config.json there; give a local model folder"):
        ImageBackbone(ModalitySpec("photo", "image", (3, 32, 32)), str(tmp_path / "missing"))


def test_a_frozen_backbone_feeds_attention_in_a_run(tmp_path: Path):
    folder = save_backbone("resnet", tmp_path)
    root = write_folder(tmp_path / "raw")
    columns = "{image: {column: photo, kind: image, size: 32, channels: 3}, audio: {column: speech, kind: audio}}"
    cfg = compose_train(
        [
            "data=hf",
            f"data.source={root}",
            f"data.columns={columns}",
            "data.batch_size=8",
            "fusion.operator=attention",
            f"model.encoders.modalities={{image: {{backbone: {folder}}}}}",
            *FAST,
        ],
        output_dir=tmp_path / "run",
    )
    summary = train_job(cfg)
    assert summary["status"] == "completed"
    state = torch.load(summary["best_checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    fresh = backbone_weights(folder)
    key = next(k for k in state if k.endswith("encoders.image.model.embedder.embedder.convolution.weight"))
    assert torch.equal(state[key], fresh["embedder.embedder.convolution.weight"])  # frozen: as loaded


@pytest.mark.slow  # trains or builds a dataset for over a second
def test_frozen_encoders_cache_their_features_at_preparation(tmp_path: Path):
    from fuselab.data.datasets.hf import HFDataModule

    folder = save_backbone("resnet", tmp_path)
    root = write_folder(tmp_path / "raw")
    columns = {
        "image": {
            "column": "photo",
            "kind": "image",
            "size": 32,
            "channels": 3,
            "encode_with": {"backbone": str(folder), "output": "grid"},
        },
        "text": {"column": "caption", "kind": "text", "encode_with": {"pretrained": "minilm", "output": "pooled"}},
    }
    dm = HFDataModule(str(root), columns=columns, cache_dir=str(tmp_path / "cache"), batch_size=4)
    specs = dm.describe().modalities
    assert specs["image"].kind == "sequence" and specs["image"].shape == (None, 16)
    assert specs["text"].kind == "vector" and specs["text"].shape == (384,)
    dm.setup()
    row = dm.splits["test"][0]
    assert np.asarray(row["image"]).shape == (16, 16)  # a 4x4 grid of 16 channels, row by row
    # each distinct picture is encoded once; a row's features are its own picture's
    from fuselab.data.readers.images import image_of
    from fuselab.data.readers.pretrained_files import image_features, load_vision

    photo = datasets.Dataset.from_parquet(str(root / "test.parquet"))[0]["photo"]
    x = torch.as_tensor(image_of(photo, root, {"size": 32, "channels": 3}))[None]
    with torch.no_grad():
        items, _, _ = image_features(load_vision(str(folder)).eval(), x)
    np.testing.assert_allclose(np.asarray(row["image"]), items[0].numpy(), atol=1e-5)
    tok = load_tokenizer("minilm")
    ids = torch.tensor([tok.encode(datasets.Dataset.from_parquet(str(root / "test.parquet"))[0]["caption"]).ids])
    expected = PooledTextEncoder(PretrainedSteps("t", "minilm"))(
        ModalityBatch(ids, torch.tensor([ids.shape[1]]), torch.ones(1, dtype=torch.bool))
    )
    np.testing.assert_allclose(np.asarray(row["text"]), expected[0].numpy(), atol=1e-5)
    with pytest.raises(ConfigError, match="encode_with.output='pooled ' is not one of"):
        HFDataModule(
            str(root),
            columns={"image": {**columns["image"], "encode_with": {"backbone": str(folder), "output": "pooled "}}},
        )
    cfg = compose_train(
        [
            "data=hf",
            f"data.source={root}",
            "data.batch_size=8",
            *FAST,
            "data.columns={image: {column: photo, kind: image, size: 32, channels: 3, encode_with: "
            f"{{backbone: {folder}, output: grid}}}}, text: {{column: caption, kind: text, "
            "encode_with: {pretrained: minilm}}}",
        ],
        output_dir=tmp_path / "run",
    )
    assert train_job(cfg)["status"] == "completed"
