"""Metrics of generated sequences: BLEU-1..4, word and character error rate (torchmetrics),
exact match, and CIDEr-D for captions.

Each hypothesis is scored against its references (several for captions, one for
transcriptions). WER and CER compare with the first reference. All but CIDEr are torchmetrics
states and are reduced across DDP ranks; CIDEr's document frequencies need every caption of the
split, so under DDP it is computed per rank (over that rank's share of the split). METEOR and SPICE need a Java
runtime (the COCO caption toolkit runs them through one) and are not offered.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.text import BLEUScore, CharErrorRate, WordErrorRate

GENERATION_METRICS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "wer", "cer", "exact_match", "cider")
GENERATION_DEFAULTS = ["wer", "cer", "exact_match", "bleu_1", "bleu_2", "bleu_3", "bleu_4"]


def _ngrams(words: Sequence[str], n: int) -> Counter:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def cider_d(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4, sigma: float = 6.0
) -> float:
    """CIDEr-D (Vedantam et al. 2015, as the COCO caption toolkit computes it): per n-gram
    order, the cosine of tf-idf vectors (document frequencies over the references of the scored
    set, hypothesis counts clipped by the reference's, a Gaussian penalty on the length
    difference), averaged over orders 1..4 and references, times 10; mean over samples."""
    if not hypotheses:
        return 0.0
    refs_words = [[r.split() for r in refs] for refs in references]
    n_docs = len(hypotheses)
    df: list[Counter] = [Counter() for _ in range(max_n)]
    for refs in refs_words:
        for n in range(1, max_n + 1):
            df[n - 1].update(set().union(*(_ngrams(r, n).keys() for r in refs)) if refs else set())
    log_docs = math.log(float(n_docs))

    def vector(words: list[str], n: int) -> tuple[dict, float]:
        counts = _ngrams(words, n)
        vec = {g: tf * (log_docs - math.log(max(1.0, df[n - 1][g]))) for g, tf in counts.items()}
        return vec, math.sqrt(sum(v * v for v in vec.values()))

    total = 0.0
    for hyp, refs in zip(hypotheses, refs_words):
        words = hyp.split()
        score = 0.0
        for n in range(1, max_n + 1):
            h_vec, h_norm = vector(words, n)
            for ref in refs:
                r_vec, r_norm = vector(ref, n)
                dot = sum(min(v, r_vec[g]) * r_vec[g] for g, v in h_vec.items() if g in r_vec)
                sim = dot / (h_norm * r_norm) if h_norm and r_norm else 0.0
                sim *= math.exp(-((len(words) - len(ref)) ** 2) / (2 * sigma**2))
                score += sim / max(len(refs), 1)
        total += 10.0 * score / max_n
    return total / n_docs


class GenerationMetrics(nn.Module):
    """The metrics ``names`` (see :data:`GENERATION_METRICS`) over text hypotheses and their
    references: ``update(hypotheses, references)``, ``compute() -> {name: tensor}``, ``reset()``.
    Logged names carry ``prefix`` (``val/``, ``test/``)."""

    def __init__(self, names: Sequence[str], prefix: str = "") -> None:
        super().__init__()
        self.names, self.prefix = list(names), prefix
        self.bleu = nn.ModuleDict(
            {name: BLEUScore(n_gram=int(name[-1])) for name in self.names if name.startswith("bleu_")}
        )
        self.wer = WordErrorRate() if "wer" in self.names else None
        self.cer = CharErrorRate() if "cer" in self.names else None
        self.exact = MeanMetric() if "exact_match" in self.names else None
        self.update_count = 0
        self._texts: list[tuple[str, list[str]]] = []  # for CIDEr (document frequencies need all)

    def clone(self, prefix: str) -> GenerationMetrics:
        return GenerationMetrics(self.names, prefix)

    def update(self, hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> None:
        hyps, refs = list(hypotheses), [list(r) for r in references]
        for metric in self.bleu.values():
            metric.update(hyps, refs)
        firsts = [r[0] if r else "" for r in refs]
        if self.wer is not None:
            self.wer.update(hyps, firsts)
        if self.cer is not None:
            self.cer.update(hyps, firsts)
        if self.exact is not None:
            self.exact.update(torch.tensor([float(h in r) for h, r in zip(hyps, refs)]))
        if "cider" in self.names:
            self._texts.extend(zip(hyps, refs))
        self.update_count += len(hyps)

    def compute(self) -> dict[str, torch.Tensor]:
        out = {name: metric.compute() for name, metric in self.bleu.items()}
        if self.wer is not None:
            out["wer"] = self.wer.compute()
        if self.cer is not None:
            out["cer"] = self.cer.compute()
        if self.exact is not None:
            out["exact_match"] = self.exact.compute()
        if "cider" in self.names:
            hyps, refs = zip(*self._texts) if self._texts else ((), ())
            out["cider"] = torch.tensor(cider_d(hyps, refs))
        return {f"{self.prefix}{k}": torch.as_tensor(v, dtype=torch.float32) for k, v in out.items()}

    def reset(self) -> None:
        for metric in (*self.bleu.values(), self.wer, self.cer, self.exact):
            if metric is not None:
                metric.reset()
        self.update_count, self._texts = 0, []
