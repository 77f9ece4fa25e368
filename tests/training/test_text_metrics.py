"""Metrics of generated text against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from fuselab.data.specs import SPECIAL_TOKENS, TargetSpec
from fuselab.errors import ConfigError
from fuselab.training.losses import TargetLoss
from fuselab.training.metrics import build_metrics, metric_names, monitor_for
from fuselab.training.text_metrics import GenerationMetrics, cider_d

VOCAB = (*SPECIAL_TOKENS, "a", "b", "c")
TARGET = TargetSpec("generation", len(VOCAB), vocabulary=VOCAB)


def test_bleu_wer_cer_and_exact_match_by_hand():
    m = GenerationMetrics(["bleu_1", "bleu_2", "wer", "cer", "exact_match"], prefix="val/")
    m.update(["a b c d"], [["a b c e"]])
    m.update(["x y"], [["x y", "other"]])
    out = m.compute()
    # corpus BLEU: unigrams 3/4 + 2/2 matched = 5/6, bigrams 2/3 + 1/1 = 3/4; same lengths (BP = 1)
    assert out["val/bleu_1"].item() == pytest.approx(5 / 6, abs=1e-4)
    assert out["val/bleu_2"].item() == pytest.approx(math.sqrt(5 / 6 * 3 / 4), abs=1e-4)
    # WER and CER against the first reference: 1 of 6 words, 1 of 7 + 3 characters
    assert out["val/wer"].item() == pytest.approx(1 / 6, abs=1e-6)
    assert out["val/cer"].item() == pytest.approx(1 / 10, abs=1e-6)
    assert out["val/exact_match"].item() == pytest.approx(0.5)
    m.reset()
    assert m.update_count == 0


def test_cider_by_hand():
    # two samples, unigrams only: every n-gram has document frequency 1 of 2 (idf = log 2)
    score = cider_d(["a b", "c"], [["a b"], ["c d"]], max_n=1)
    second = 10 * (1 / math.sqrt(2)) * math.exp(-1 / (2 * 36))
    assert score == pytest.approx((10 + second) / 2, abs=1e-9)
    # with a single document every idf is log(1/1) = 0: CIDEr needs a set of captions
    assert cider_d(["a b c d"], [["a b c d"]]) == 0.0


def test_generation_metric_names_and_monitor():
    assert "wer" in metric_names(TARGET) and "cider" not in metric_names(TARGET)
    captions = TargetSpec("generation", len(VOCAB), vocabulary=VOCAB, metric_set="captions")
    assert "cider" in metric_names(captions)
    assert monitor_for(TARGET) == ("val/wer", "min")
    assert monitor_for(TARGET, "val/bleu_4", ["bleu_4"]) == ("val/bleu_4", "max")
    with pytest.raises(ConfigError, match="offers"):
        metric_names(TARGET, ["acc"])
    assert isinstance(build_metrics(TARGET, ["wer"]), GenerationMetrics)


def test_detokenize_stops_at_the_end_token():
    assert TARGET.detokenize([1, 4, 5, 2, 6, 0]) == "a b"
    chars = TargetSpec("generation", len(VOCAB), vocabulary=VOCAB, word_level=False)
    assert chars.detokenize([4, 5, 6]) == "abc"


def test_token_loss_ignores_target_padding():
    torch.manual_seed(0)
    loss = TargetLoss(TARGET, label_smoothing=0.1)
    target = torch.tensor([[1, 4, 5, 2], [1, 6, 2, 0]])
    logits = torch.randn(2, 3, len(VOCAB))
    padded = torch.cat([target, torch.zeros(2, 3, dtype=torch.long)], 1)
    more_logits = torch.cat([logits, torch.randn(2, 3, len(VOCAB))], 1)
    assert torch.allclose(loss(logits, target), loss(more_logits, padded))
    # by hand: mean cross-entropy over the 5 real next tokens (label smoothing off)
    plain = TargetLoss(TARGET)
    gold = [(0, 0, 4), (0, 1, 5), (0, 2, 2), (1, 0, 6), (1, 1, 2)]
    hand = -sum(torch.log_softmax(logits[b, t], -1)[g] for b, t, g in gold) / 5
    assert plain(logits, target).item() == pytest.approx(hand.item(), abs=1e-5)


def test_class_weights_refused_for_generation():
    with pytest.raises(ConfigError, match="generation target has none"):
        TargetLoss(TARGET, class_weights=[1.0] * len(VOCAB))


def test_sample_table_goes_to_wandb_loggers_only():
    from fuselab.training.module import log_sample_table

    class WandbLogger:
        def __init__(self):
            self.calls = []

        def log_table(self, **kwargs):
            self.calls.append(kwargs)

    class CSVLogger:
        def log_table(self, **kwargs):
            raise AssertionError("only wandb gets the table")

    wandb = WandbLogger()
    log_sample_table([CSVLogger(), wandb], [["one two", "one two"]])
    assert wandb.calls == [
        {"key": "test/samples", "columns": ["references", "hypothesis"], "data": [["one two", "one two"]]}
    ]
