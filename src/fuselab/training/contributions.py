"""Which modality did the work (``contributions=true``): the test metric of every subset of a
trained model's modalities, each modality's Shapley value and each pair's Shapley interaction
index (:mod:`fuselab.training.shapley`).

Every fusion level honours a per-sample ``present`` mask, so a subset is the test split with the
other modalities marked absent (one prepared split, evaluated ``2^M - 1`` times). The empty
subset is the constant prior of the train split (its most frequent class and class frequencies,
its median target, an empty output for generation): a model shown nothing has nothing to fuse.

Scores per target kind: multiclass accuracy, per-class accuracy and the mean log-likelihood of
the true class; multilabel micro F1 and the mean per-label log-likelihood; regression MAE;
generation the error rate the run monitors (WER or CER). The game a value is computed from is a
gain, higher is better: accuracy, F1 and log-likelihood as they are; for MAE and error rates
the reduction from the empty subset. So for every metric the values sum to what the whole model
gains over the prior, a helpful modality has a positive value, and a positive interaction means
a pair does more together than apart.

A model trained without modality dropout never saw a modality missing: its subset scores
measure how it copes with a missing input, not what each modality contributes. The report says
so whenever ``model.modality_dropout`` was 0.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fuselab.data.specs import TargetSpec
from fuselab.errors import ConfigError
from fuselab.training.plan import EvaluationPlan
from fuselab.training.shapley import (
    MAX_PLAYERS,
    Subset,
    all_subsets,
    interaction_indices,
    shapley_values,
    subset_name,
)

# metrics whose game is the reduction from the empty subset (smaller is better)
REDUCED = ("mae", "wer", "cer")
NO_DROPOUT_NOTE = (
    "model.modality_dropout was 0: this model never saw a modality missing in training, so its subset scores "
    "measure robustness to a missing input, not what each modality contributes. Train with "
    "model.modality_dropout>0 (e.g. 0.3) to read them as contributions."
)
EMPTY_SUBSET = "the constant prior of the train split (a model shown nothing has nothing to fuse)"


def check_modalities(names: Sequence[str]) -> None:
    if len(names) > MAX_PLAYERS:
        raise ConfigError(
            f"contributions=true evaluates every subset of the modalities exactly: {len(names)} modalities are "
            f"2^{len(names)} = {2 ** len(names)} test passes, over the limit of {MAX_PLAYERS} modalities "
            f"({2**MAX_PLAYERS} passes). Select at most {MAX_PLAYERS} with data.modalities=[...]"
        )


def _log_prior(counts: np.ndarray) -> np.ndarray:
    return np.log((counts + 1.0) / (counts.sum() + len(counts)))  # add-one: no class has probability 0


def subset_scores(target: TargetSpec, logits: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """The scores of one subset from the test split's outputs (``logits``) and targets."""
    if target.kind == "multiclass":
        y = y.long().view(-1)
        log_p = torch.log_softmax(logits.float(), -1)
        right = (log_p.argmax(-1) == y).double()
        per_class = {str(c): float(right[y == c].mean()) for c in range(target.num_outputs) if bool((y == c).any())}
        return {
            "acc": float(right.mean()),
            "log_likelihood": float(log_p.gather(1, y.unsqueeze(1)).mean()),
            "per_class_acc": per_class,
        }
    if target.kind == "multilabel":
        y = y.float()
        pred = logits.float() > 0
        return {
            "f1_micro": _f1(pred, y.bool()),
            "log_likelihood": float(-torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)),
        }
    pred = logits.float().reshape(len(y), -1)[:, 0]
    return {"mae": float((pred - y.float().reshape(len(y), -1)[:, 0]).abs().mean())}


def _f1(pred: torch.Tensor, y: torch.Tensor) -> float:
    tp = float((pred & y).sum())
    wrong = float((pred ^ y).sum())
    return 2 * tp / (2 * tp + wrong) if tp + wrong else 1.0


def prior_scores(target: TargetSpec, train: np.ndarray, test: np.ndarray, error: str | None) -> dict[str, Any]:
    """The scores of the empty subset: the constant prior of the train split's targets."""
    if target.kind == "generation":
        return {error or "wer": 1.0}  # an empty output deletes every reference word
    if target.kind == "multiclass":
        train, test = train.astype(int).reshape(-1), test.astype(int).reshape(-1)
        counts = np.bincount(train, minlength=target.num_outputs).astype(float)
        log_p, guess = _log_prior(counts), int(counts.argmax())
        per_class = {str(c): float(c == guess) for c in range(target.num_outputs) if (test == c).any()}
        return {
            "acc": float((test == guess).mean()),
            "log_likelihood": float(log_p[test].mean()),
            "per_class_acc": per_class,
        }
    if target.kind == "multilabel":
        freq = np.clip(train.reshape(len(train), -1).mean(0), 1e-3, 1 - 1e-3)
        y = test.reshape(len(test), -1).astype(bool)
        ll = np.where(y, np.log(freq), np.log1p(-freq)).mean()
        return {
            "f1_micro": _f1(torch.from_numpy(np.broadcast_to(freq > 0.5, y.shape)), torch.from_numpy(y)),
            "log_likelihood": float(ll),
        }
    median = float(np.median(train.reshape(len(train), -1)[:, 0]))
    return {"mae": float(np.abs(test.reshape(len(test), -1)[:, 0] - median).mean())}


def game(scores: dict[Subset, dict[str, Any]], metric: str, empty: Subset) -> dict[Subset, float]:
    """The game of ``metric`` over the subsets: the score, or its reduction from the empty subset."""
    if metric in REDUCED:
        return {s: scores[empty][metric] - v[metric] for s, v in scores.items()}
    return {s: float(v[metric]) for s, v in scores.items()}


def contributions(
    scores: dict[Subset, dict[str, Any]], players: Sequence[str], names: Sequence[str] = ()
) -> dict[str, Any]:
    """Shapley values and interactions of every metric in ``scores`` (each subset's scores),
    and per class of the per-class accuracy; ``names``: the class names, when the data has them."""
    empty = frozenset()
    report: dict[str, Any] = {"subsets": {}, "shapley": {}, "interactions": {}, "gain_over_prior": {}}
    for metric in (m for m in scores[empty] if m != "per_class_acc"):
        v = game(scores, metric, empty)
        report["subsets"][metric] = {subset_name(s, players): scores[s][metric] for s in all_subsets(players)}
        report["shapley"][metric] = shapley_values(v, players)
        report["interactions"][metric] = {f"{i}+{j}": x for (i, j), x in interaction_indices(v, players).items()}
        report["gain_over_prior"][metric] = v[frozenset(players)] - v[empty]
    if "per_class_acc" in scores[empty]:
        report["per_class"] = {}
        classes = sorted({c for s in scores.values() for c in s["per_class_acc"]}, key=int)
        for c in classes:
            v = {s: float(scores[s]["per_class_acc"].get(c, 0.0)) for s in scores}
            label = names[int(c)] if int(c) < len(names) else c
            report["per_class"][label] = shapley_values(v, players)
    return report


def run_contributions(
    task: Any,
    dm: Any,
    trainer: Any,
    out_dir: Path | None = None,
    ckpt_path: str | None = None,
    absent: Sequence[str] = (),
) -> dict[str, Any]:
    """Evaluate every subset of the run's modalities on the test split (``absent``: modalities
    never present, e.g. fuselab-eval's ``drop``); write ``contributions.json`` and
    ``contributions.png`` into ``out_dir``; return the report."""
    data = dm.describe()
    players = [m for m in data.modalities if m not in absent]
    check_modalities(players)
    target = data.target
    error: str | None = None  # generation: the error rate the test logs (wer, else cer)
    scores: dict[Subset, dict[str, Any]] = {}
    for subset in all_subsets(players)[1:]:
        missing = tuple(absent) + tuple(m for m in players if m not in subset)
        plan = EvaluationPlan(absent=missing, collected=None if target.is_generation else [])
        with task.evaluating(plan):
            (result,) = trainer.test(task, datamodule=dm, ckpt_path=ckpt_path, verbose=False, weights_only=True)
        ckpt_path = None  # loaded once: later passes reuse the weights in the task
        if target.is_generation:
            error = error or next((m for m in ("wer", "cer") if f"test/{m}" in result), None)
            if error is None:
                raise ConfigError(
                    f"contributions=true on a generation run needs test/wer or test/cer; it logs {sorted(result)}"
                )
            scores[subset] = {error: float(result[f"test/{error}"])}
        else:
            logits = torch.cat([b["logits"] for b in plan.collected or []])
            y = torch.cat([b["target"] for b in plan.collected or []])
            scores[subset] = subset_scores(target, logits, y)
    test_y = dm.split_labels("test") if not target.is_generation else np.zeros(0)
    train_y = dm.split_labels("train") if not target.is_generation else np.zeros(0)
    scores[frozenset()] = prior_scores(target, train_y, test_y, error)
    report = {
        "modalities": players,
        "metrics": [m for m in scores[frozenset()] if m != "per_class_acc"],
        "empty_subset": EMPTY_SUBSET,
        "values": "gains, higher is better: accuracy, F1 and log-likelihood as they are; MAE and error rates as "
        "their reduction from the empty subset. Shapley values sum to gain_over_prior.",
        "modality_dropout": float(task.modality_dropout),
        "per_class_note": "per class, the empty subset is the prior's guess (its most frequent class): that class "
        "starts at accuracy 1 and the others at 0",
        **contributions(scores, players, target.class_names),
    }
    if task.modality_dropout == 0:
        report["note"] = NO_DROPOUT_NOTE
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "contributions.json").write_text(json.dumps(report, indent=1))
        from fuselab.training.contribution_plot import plot_contributions

        plot_contributions(report, out_dir / "contributions.png")
    return report


def summary_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The first metric's Shapley values, interactions and each modality's score alone as flat
    metrics of the run (``test/shapley/<metric>/<modality>``, ``test/interaction/<metric>/<a>+<b>``,
    ``test/alone/<metric>/<modality>``): columns of fuselab-compare, study cells, wandb summary fields."""
    metric = report["metrics"][0]
    out = {f"test/shapley/{metric}/{m}": v for m, v in report["shapley"][metric].items()}
    out.update({f"test/alone/{metric}/{m}": report["subsets"][metric][m] for m in report["modalities"]})
    out.update({f"test/interaction/{metric}/{p}": v for p, v in report["interactions"][metric].items()})
    return out
