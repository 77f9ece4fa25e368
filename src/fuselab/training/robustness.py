"""Robustness of a trained model (``fuselab-eval ckpt_path=... robustness.enabled=true``).

The test split is evaluated with seeded noise of increasing level on one modality at a time
(and on all at once), and with each modality missing. Noise of level ``l`` in [0, 1]:
float modalities get Gaussian noise of ``l`` times their standard deviation; tokens are replaced
by random tokens with probability ``l``.

Summaries as MultiBench defines them (Liang et al. 2021, eval_scripts/robustness.py):
- relative robustness: the area under the metric-vs-level curve (trapezoids over [0, 1]; for an
  error rate such as a generation run's test/wer, smaller is more robust: ``lower_is_better``);
- effective robustness: sum over levels of ``f_i - (b_i + f_0 - b_0)``, how much better the
  curve holds up than a baseline ``b`` (MultiBench uses late fusion) shifted to the same clean
  value. It needs a baseline: ``robustness.baseline=<robustness.json of another run>``.
(MultiBench then min-max normalises both across the methods of a table; the raw values are
reported here.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fuselab.data.specs import ModalityBatch, ModalitySpec
from fuselab.errors import ConfigError
from fuselab.training.metrics import LOWER_IS_BETTER
from fuselab.training.plan import EvaluationPlan


def relative_robustness(curve: Sequence[float]) -> float:
    """The area under a curve sampled at evenly spaced levels over [0, 1] (trapezoids)."""
    if len(curve) < 2:
        return float("nan")
    return float(np.trapezoid(np.asarray(curve, dtype=float), dx=1.0 / (len(curve) - 1)))


def effective_robustness(curve: Sequence[float], baseline: Sequence[float]) -> float:
    f, b = np.asarray(curve, dtype=float), np.asarray(baseline, dtype=float)
    if f.shape != b.shape:
        raise ConfigError(f"the baseline has {len(b)} levels, this curve {len(f)}: evaluate both with the same levels")
    return float(np.sum(f - (b + f[0] - b[0])))


class Perturbation:
    """Noise of one level on the named modalities, reproducible batch by batch."""

    def __init__(self, specs: dict[str, ModalitySpec], modalities: Sequence[str], level: float, seed: int) -> None:
        self.specs, self.modalities, self.level, self.seed = specs, list(modalities), float(level), int(seed)
        self.batch = 0

    def __call__(self, inputs: dict[str, ModalityBatch]) -> dict[str, ModalityBatch]:
        self.batch += 1
        if self.level <= 0:
            return inputs
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.batch)
        out = dict(inputs)
        for m in self.modalities:
            mb, spec = inputs[m], self.specs[m]
            x = mb.x.cpu()
            if spec.kind == "tokens":
                swap = torch.rand(x.shape, generator=g) < self.level
                noisy = torch.where(swap, torch.randint(0, int(spec.vocab_size or 1), x.shape, generator=g), x)
            else:
                std = x.float().std().clamp_min(1e-6)
                noisy = x + self.level * std * torch.randn(x.shape, generator=g, dtype=x.dtype)
                if mb.lengths is not None:  # padding stays zero
                    valid = torch.arange(x.shape[1]).unsqueeze(0) < mb.lengths.cpu().unsqueeze(1)
                    noisy = noisy * valid.unsqueeze(-1)
            out[m] = mb._replace(x=noisy.to(mb.x.device))
        return out


def plot_curves(levels: Sequence[float], curves: dict[str, list[float]], metric: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for name, curve in curves.items():
        ax.plot(levels, curve, marker="o", markersize=3, label=f"noise on {name}")
    ax.set_xlabel("noise level")
    ax.set_ylabel(metric)
    ax.legend(fontsize=7)
    ax.set_title("robustness to noise", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def check_settings(levels: Any, baseline: str | None) -> dict[str, Any] | None:
    """``robustness.levels`` makes a curve (two levels or more) and ``robustness.baseline`` is a
    robustness.json with curves, checked before anything is evaluated; the baseline's content."""
    if not isinstance(levels, int) or isinstance(levels, bool) or levels < 2:
        raise ConfigError(f"robustness.levels={levels!r}: a curve needs 2 levels or more, e.g. robustness.levels=11")
    if not baseline:
        return None
    path = Path(str(baseline)).expanduser()
    try:
        base = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"robustness.baseline={baseline}: cannot read it ({exc}); give the robustness.json another "
            "fuselab-eval robustness.enabled=true wrote"
        ) from exc
    if not isinstance(base, dict) or not isinstance(base.get("curves"), dict):
        raise ConfigError(f"robustness.baseline={baseline} holds no curves: it is not a fuselab robustness.json")
    return base


def run_robustness(
    task: Any,
    dm: Any,
    trainer: Any,
    metric: str,
    levels: int = 11,
    seed: int = 0,
    baseline: str | None = None,
    out_dir: Path | None = None,
    absent: tuple[str, ...] = (),
) -> dict[str, Any]:
    grid = [i / (levels - 1) for i in range(levels)] if levels > 1 else [0.0]
    specs = dm.describe().modalities
    names = list(specs)
    targets = {m: [m] for m in names} | ({"all": names} if len(names) > 1 else {})

    def score() -> float:
        (result,) = trainer.test(task, datamodule=dm, verbose=False)
        if metric not in result:
            raise ConfigError(f"robustness.metric={metric} is not logged; choose one of {sorted(result)}")
        return float(result[metric])

    curves: dict[str, list[float]] = {}
    for name, mods in targets.items():
        curves[name] = []
        for level in grid:
            with task.evaluating(EvaluationPlan(absent, Perturbation(specs, mods, level, seed))):
                curves[name].append(score())
    missing = {}
    for m in names:
        if len(names) > 1:
            with task.evaluating(EvaluationPlan(absent=(m,))):
                missing[m] = score()
    report: dict[str, Any] = {
        "metric": metric,
        # error rates and losses: a smaller area is the more robust model
        "lower_is_better": metric.rsplit("/", 1)[-1] in LOWER_IS_BETTER,
        "levels": grid,
        "curves": curves,
        "missing": missing,
        "relative_robustness": {k: relative_robustness(c) for k, c in curves.items()},
    }
    base = check_settings(levels, baseline)
    if base is not None:
        report["baseline"] = str(baseline)
        report["effective_robustness"] = {
            k: effective_robustness(c, base["curves"][k]) for k, c in curves.items() if k in base.get("curves", {})
        }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "robustness.json").write_text(json.dumps(report, indent=1))
        plot_curves(grid, curves, metric, out_dir / "robustness.png")
    return report
