"""Runs grouped by the axes that vary (``fuselab-compare``, the end-of-sweep table, studies).

Reads every ``summary.json`` below the given directories (a sweep, several sweeps, studies),
finds the settings that differ between runs (group choices and overrides), treats seeds as
repetitions, and reports mean ± std (ddof=1) and n per group, with failed runs counted.
:func:`write_outputs` writes ``compare.md``, ``compare.csv`` and PNG plots (a bar chart per axis,
a heatmap for the first two axes).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from rich.console import Console
from rich.table import Table

from fuselab.errors import ConfigError
from fuselab.reports.tables import markdown_table
from fuselab.training.summary import SUMMARY, RunRecord, Status, as_records, has_converged, read_record

SEED_KEYS = {"seed"}
IGNORED_KEYS = {"sweep_name", "skip_completed"}
IGNORED_PREFIXES = ("hydra.", "paths.", "callbacks.progress_bar", "logger")


@dataclass
class Group:
    key: tuple[str, ...]
    runs: list[RunRecord] = field(default_factory=list)
    failed: int = 0
    running: int = 0

    def values(self, metric: str) -> list[float]:
        return [r.metrics[metric] for r in self.runs if metric in r.metrics]


@dataclass
class Comparison:
    axes: list[str]
    metrics: list[str]
    groups: list[Group]
    primary: str
    # summaries that could not be read: what is wrong with each, naming its file
    unreadable: list[str] = field(default_factory=list)

    @property
    def any_running(self) -> bool:
        return any(g.running for g in self.groups)

    def stats(self, group: Group, metric: str) -> tuple[float, float, int]:
        vals = group.values(metric)
        if not vals:
            return math.nan, math.nan, 0
        std = statistics.stdev(vals) if len(vals) > 1 else math.nan
        return statistics.fmean(vals), std, len(vals)


def find_summaries(dirs: Iterable[str | Path]) -> list[RunRecord]:
    found = []
    for d in dirs:
        d = Path(d)
        if not d.exists():
            raise ConfigError(f"{d} does not exist")
        paths = [d / SUMMARY] if (d / SUMMARY).exists() else sorted(d.rglob(SUMMARY))
        for p in paths:
            if "attempts" in p.relative_to(d).parts:
                continue  # earlier attempts of re-run jobs
            found.append(settle_convergence(read_record(p.parent), p.parent))
    return found


def settle_convergence(record: RunRecord, run_dir: Path) -> RunRecord:
    """``converged`` by today's rule (:func:`has_converged`): runs recorded before the summary kept
    the early-stopping patience judged a run whose best epoch came shortly before its cap as
    converged; their patience is read back from the run's saved Hydra config."""
    if not record.completed or record.best_epoch is None or record.history is None:
        return record
    patience = record.patience if record.patience is not None else _saved_patience(run_dir)
    after = sum(1 for e in record.history.get("epoch", []) if e > record.best_epoch)
    return record.replace(converged=has_converged(after, record.stopped_early, patience))


def _saved_patience(run_dir: Path) -> int | None:
    try:
        cfg = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    stopper = (cfg.get("callbacks") or {}).get("early_stopping") or {}
    patience = stopper.get("patience") if isinstance(stopper, dict) else None
    return patience if isinstance(patience, int) else None


def settings(record: RunRecord) -> dict[str, str]:
    """What a run chose: its config-group choices, then its overrides (key=value)."""
    out = {
        k: v
        for k, v in record.choices.items()
        if "/" not in k and k not in ("paths", "hydra", "callbacks", "logger", "debug")
    }
    for o in record.overrides:
        if "=" not in o:
            continue
        k, v = o.split("=", 1)
        k = k.lstrip("+~")
        if k in IGNORED_KEYS or k.startswith(IGNORED_PREFIXES):
            continue
        out[k] = v
    return out


def compare_runs(dirs: Sequence[str | Path], metric: str | None = None) -> Comparison:
    summaries = find_summaries(dirs)
    if not summaries:
        raise ConfigError(f"no {SUMMARY} found under {[str(d) for d in dirs]}")
    return compare_summaries(summaries, metric)


def compare_summaries(summaries: Sequence[RunRecord | dict[str, Any]], metric: str | None = None) -> Comparison:
    records = as_records(summaries)
    unreadable = [str(s.error or s.run_dir) for s in records if s.status is Status.UNREADABLE]
    summaries = [s for s in records if s.status is not Status.UNREADABLE]
    per_run = [settings(s) for s in summaries]
    keys = sorted({k for s in per_run for k in s})
    axes = [k for k in keys if k not in SEED_KEYS and len({s.get(k, "-") for s in per_run}) > 1]
    groups: dict[tuple[str, ...], Group] = {}
    for s, summary in zip(per_run, summaries):
        key = tuple(s.get(a, "-") for a in axes)
        g = groups.setdefault(key, Group(key))
        if summary.status is Status.COMPLETED:
            g.runs.append(summary)
        elif summary.status is Status.RUNNING:
            g.running += 1
        else:
            g.failed += 1
    metrics = sorted({m for s in summaries for m in s.metrics})
    metrics = [m for m in metrics if m.startswith("test/")] + [m for m in metrics if m.startswith("val/")]
    if not metrics:
        named = f"; unreadable: {'; '.join(unreadable)}" if unreadable else ""
        raise ConfigError(f"no run has metrics (every one failed or is still running){named}")
    monitors = {s.monitor for s in summaries if s.monitor}
    primary = metric or next(
        (m.replace("val/", "test/") for m in monitors if m.replace("val/", "test/") in metrics), metrics[0]
    )
    if primary not in metrics:
        raise ConfigError(f"--metric {primary} is not logged; choose one of {metrics}")
    ordered = sorted(groups.values(), key=lambda g: g.key)
    return Comparison(axes=axes, metrics=metrics, groups=ordered, primary=primary, unreadable=unreadable)


def _fmt(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def rows(c: Comparison, metrics: Sequence[str] | None = None) -> tuple[list[str], list[list[str]]]:
    metrics = list(metrics or [c.primary] + [m for m in c.metrics if m != c.primary and m.startswith("test/")])
    running = ["running"] if c.any_running else []
    header = [*c.axes, "n", *running, "failed", *metrics]
    body = []
    for g in c.groups:
        stats = [c.stats(g, m) for m in metrics]
        counts = [str(len(g.runs)), *([str(g.running)] if running else []), str(g.failed)]
        body.append([*g.key, *counts, *(_fmt(m, s) for m, s, _ in stats)])
    return header, body


def _width(header: Sequence[str], body: Sequence[Sequence[str]]) -> int:
    """The characters a rich table of these cells needs (borders and padding included)."""
    cols = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    return sum(cols) + 3 * len(cols) + 1


def print_table(c: Comparison, console: Console | None = None) -> None:
    """The comparison as a table that fits the terminal (or log file) without cutting a number:
    a group per row when it fits, else a metric per row and a group per column, else one block
    of lines per group."""
    console = console or Console()
    header, body = rows(c)
    title = f"{len(c.groups)} groups by {', '.join(c.axes) or '(nothing varies)'}"
    n_axes = len(c.axes)
    names = [", ".join(r[:n_axes]) or "all runs" for r in body]
    flipped_header = ["", *names]
    flipped = [[h, *(r[i] for r in body)] for i, h in enumerate(header) if i >= n_axes]
    if _width(header, body) <= console.width:
        table = Table(title=title)
        for h in header:
            table.add_column(h, justify="right" if h not in c.axes else "left", no_wrap=True)
        for r in body:
            table.add_row(*r)
        console.print(table)
    elif _width(flipped_header, flipped) <= console.width:
        table = Table(title=title)
        for h in flipped_header:
            table.add_column(h, justify="left" if not h else "right", no_wrap=True)
        for r in flipped:
            table.add_row(*r)
        console.print(table)
    else:
        console.print(title, markup=False, highlight=False)
        pad = max(len(h) for h in header[n_axes:])
        for name, r in zip(names, body):
            console.print(f"{name}:", markup=False, highlight=False, soft_wrap=True)
            for h, v in zip(header[n_axes:], r[n_axes:]):
                console.print(f"  {h:<{pad}}  {v}", markup=False, highlight=False, soft_wrap=True)
    for what in c.unreadable:
        console.print(f"left out, unreadable: {what}", markup=False, highlight=False, soft_wrap=True)


def write_outputs(c: Comparison, out: Path, plots: bool = True) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    header, body = rows(c, [c.primary] + [m for m in c.metrics if m != c.primary])
    (out / "compare.md").write_text(
        f"# Comparison\n\nPrimary metric: `{c.primary}`; mean ± std (ddof=1) over seeds, n runs per group.\n\n"
        + markdown_table(header, body)
        + "\n"
        + "".join(f"\nLeft out, unreadable: {what}\n" for what in c.unreadable)
    )
    records = []
    for g in c.groups:
        record: dict[str, Any] = {**dict(zip(c.axes, g.key)), "n": len(g.runs), "running": g.running}
        record["failed"] = g.failed
        for m in c.metrics:
            record[f"{m} mean"], record[f"{m} std"], _ = c.stats(g, m)
        records.append(record)
    pd.DataFrame(records).to_csv(out / "compare.csv", index=False)
    return [out / "compare.md", out / "compare.csv", *(plot(c, out) if plots else [])]


def plot(c: Comparison, out: Path) -> list[Path]:
    from fuselab.reports.plots import bar_chart_png, heatmap_png

    written = []
    for i, axis in enumerate(c.axes):
        labels = sorted({g.key[i] for g in c.groups})
        means, stds, counts = [], [], []
        for label in labels:
            vals = [v for g in c.groups if g.key[i] == label for v in g.values(c.primary)]
            means.append(statistics.fmean(vals) if vals else math.nan)
            stds.append(statistics.stdev(vals) if len(vals) > 1 else math.nan)
            counts.append(len(vals))
        safe = axis.replace("/", "_").replace(".", "_")
        written.append(bar_chart_png(labels, means, stds, c.primary, axis, out / f"bar_{safe}.png", counts))
    if len(c.axes) >= 2:
        r_labels = sorted({g.key[0] for g in c.groups})
        c_labels = sorted({g.key[1] for g in c.groups})
        grid = np.full((len(r_labels), len(c_labels)), np.nan)
        for i, r in enumerate(r_labels):
            for j, col in enumerate(c_labels):
                vals = [v for g in c.groups if g.key[0] == r and g.key[1] == col for v in g.values(c.primary)]
                if vals:
                    grid[i, j] = statistics.fmean(vals)
        written.append(heatmap_png(r_labels, c_labels, grid, c.primary, c.axes[0], c.axes[1], out / "heatmap.png"))
    return written
