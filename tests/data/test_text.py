"""Text columns of data=hf: a tokenizer fitted on the train split only (or a tokenizer.json),
bad text refused or skipped, and pretrained word vectors (GloVe / word2vec files)."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from conftest import FAST, compose_train
from fixtures_data import write_reviews

from fuselab.data.datasets.hf import HFDataModule
from fuselab.data.readers.text import fit_word_tokenizer, read_word_vectors, vector_file_dim
from fuselab.errors import ConfigError
from fuselab.runs.job import train_job


def columns(**text_opts) -> dict:
    return {"review": {"column": "review", "kind": "text", **text_opts}, "stats": {"column": "stats", "kind": "vector"}}


def module(root: Path, tmp_path: Path, **kwargs) -> HFDataModule:
    kw = {"columns": columns(), "target_column": "label", "cache_dir": str(tmp_path / "cache"), "batch_size": 8}
    kw.update(kwargs)
    return HFDataModule(str(root), **kw)


def test_tokenizer_is_fitted_on_train_only(tmp_path: Path):
    root = write_reviews(tmp_path / "reviews")
    dm = module(root, tmp_path, columns=columns(min_count=2))
    spec = dm.describe().modalities["review"]
    vocab = list(spec.vocabulary)
    assert spec.kind == "tokens" and vocab[:2] == ["<pad>", "<unk>"] and spec.vocab_size == len(vocab)
    assert "zebra" not in vocab and {"good", "bad", "film", "the", "."} <= set(vocab)
    assert "GOOD" not in vocab  # lowercased
    dm.setup()
    val = datasets.Dataset.from_parquet(str(root / "validation.parquet"))
    zebra_rows = [i for i, t in enumerate(val["review"]) if "zebra" in t]
    ids = dm.splits["val"][zebra_rows[0]]["review"]
    words = [vocab[i] for i in ids]
    assert "<unk>" in words and len(words) == len(
        val["review"][zebra_rows[0]].replace(".", " .").replace("!", " !").split()
    )


def test_a_tokenizer_json_is_used_as_given(tmp_path: Path):
    root = write_reviews(tmp_path / "reviews")
    tok = fit_word_tokenizer(["good bad film"], lowercase=False)
    tok.save(str(tmp_path / "tokenizer.json"))
    dm = module(root, tmp_path, columns=columns(tokenizer=str(tmp_path / "tokenizer.json")))
    assert list(dm.describe().modalities["review"].vocabulary) == ["<pad>", "<unk>", "bad", "film", "good"]
    with pytest.raises(ConfigError, match=r"text tokenizer: .*/nowhere does not exist; give a tokenizer.json"):
        module(root, tmp_path, columns=columns(tokenizer=str(tmp_path / "nowhere"))).describe()


def test_bad_text_is_refused_with_its_row_or_skipped_and_counted(tmp_path: Path):
    root = write_reviews(tmp_path / "reviews", empty_row=7)
    with pytest.raises(ConfigError, match=r"data.columns.review: row 7 of the train split: column .review. is empty"):
        module(root, tmp_path).describe()
    dm = module(root, tmp_path, bad_rows="skip")
    dm.setup()
    assert len(dm.splits["train"]) == 59 and dm.prepared_marker()["notes"]["skipped_rows"]["train"] == 1
    with pytest.raises(ConfigError, match="do not apply to text"):
        module(root, tmp_path, columns={"review": {"column": "review", "kind": "text", "vocab": 3}})


def write_vectors(path: Path, words: dict[str, list[float]], header: bool = False) -> Path:
    dim = len(next(iter(words.values())))
    lines = [f"{len(words)} {dim}"] if header else []
    lines += [w + " " + " ".join(f"{v:.3f}" for v in vec) for w, vec in words.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("header", [False, True])
def test_word_vector_files_parse_with_coverage(tmp_path: Path, header: bool):
    vecs = {"Good": [1.0, 0.0, 0.5], "bad": [0.0, 1.0, -0.5], "plot": [0.25, 0.25, 0.25], "other": [9.0, 9.0, 9.0]}
    path = write_vectors(tmp_path / "vectors.txt", vecs, header)
    assert vector_file_dim(path) == 3
    out, found = read_word_vectors(path, ["<pad>", "<unk>", "good", "bad", "film", "plot"])
    assert found.tolist() == [False, False, True, True, False, True]  # 'good' found through 'Good'
    assert out[2].tolist() == [1.0, 0.0, 0.5] and out[5].tolist() == [0.25, 0.25, 0.25] and not out[4].any()
    (tmp_path / "bad.txt").write_text("good 1 2 3\nbad 1 2\n")
    with pytest.raises(ConfigError, match="line 2 has 2 values, the file's vectors have 3"):
        read_word_vectors(tmp_path / "bad.txt", ["<pad>", "<unk>", "bad"])


def test_glove_vectors_initialise_and_freeze_the_embedding_in_a_run(tmp_path: Path):
    root = write_reviews(tmp_path / "reviews")
    rng = np.random.default_rng(1)
    vecs = {w: rng.normal(size=4).round(3).tolist() for w in ["good", "bad", "film", "plot", "the"]}
    glove = write_vectors(tmp_path / "glove.txt", vecs)
    common = [
        "data=hf",
        f"data.source={root}",
        "data.target_kind=multiclass",
        f"data.columns={json.dumps(columns()).replace(chr(34), '')}",
        "data.batch_size=16",
        *FAST,
    ]
    with pytest.raises(
        ConfigError,
        match=r"holds 4-d vectors but the embedding has 32; set model.encoders.modalities.review.embed_dim=4",
    ):
        train_job(
            compose_train(
                [*common, f"model.encoders.modalities={{review: {{vectors: {glove}}}}}"], output_dir=tmp_path / "r0"
            )
        )
    summary = train_job(
        compose_train(
            [
                *common,
                f"model.encoders.modalities={{review: {{vectors: {glove}, embed_dim: 4, freeze_vectors: true}}}}",
            ],
            output_dir=tmp_path / "r1",
        )
    )
    assert summary["status"] == "completed"
    report = summary["transfer"]["word_vectors"]["review"]
    assert report["found"] == 5 and report["frozen"] is True
    state = torch.load(summary["best_checkpoint"], map_location="cpu", weights_only=True)
    words = state["hyper_parameters"]["data"]["modalities"]["review"]["vocabulary"]
    emb = next(v for k, v in state["state_dict"].items() if k.endswith("review.steps.embed.weight"))
    for w, vec in vecs.items():  # loaded and, frozen, unchanged by training
        assert torch.allclose(emb[words.index(w)], torch.tensor(vec)), w
    assert report["words"] == len(words) - 2
    # evaluating the run needs neither the vectors file nor the run it was initialised from
    glove.unlink()
    from fuselab.runs.job import eval_job as evaluate

    eval_cfg = compose_train(
        [f"ckpt_path={summary['best_checkpoint']}"], output_dir=tmp_path / "eval", config_name="eval"
    )
    assert evaluate(eval_cfg)["metrics"]["test/acc"] == pytest.approx(summary["metrics"]["test/acc"], abs=1e-6)
