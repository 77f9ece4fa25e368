"""The report half of ``fuselab-study``: reference cells checked against the runs, the tables
of ``report.md`` (side by side as the paper lays them out, per cell, per part), plots, and
``results.json`` with the comparison against the committed one (``reproduce_tolerance``)."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fuselab.errors import ConfigError
from fuselab.reports.compare import Comparison, compare_summaries, find_summaries, rows, write_outputs
from fuselab.reports.studies.cells import check_cell, format_cell, group_name, side_by_side
from fuselab.reports.studies.previous import comparison_baseline, lacking, reproduction_lines, runs_digest
from fuselab.reports.studies.spec import Study, expected_jobs
from fuselab.reports.tables import markdown_table
from fuselab.training.summary import RunRecord, Status, as_records

BUDGET_KEYS = (
    "trainer.max_epochs",
    "trainer.min_epochs",
    "trainer.max_steps",
    "trainer.limit_train_batches",
    "callbacks",
    "callbacks.early_stopping.patience",
    "data.train_size",
)


# the metrics contributions=true adds (fuselab.training.contributions.summary_metrics)
CONTRIBUTION_PREFIXES = ("test/shapley/", "test/interaction/", "test/alone/")


def budget_line(study: Study, summaries: Sequence[RunRecord | dict[str, Any]]) -> str:
    """The training budget the sweep sets, and how many runs ended still improving."""
    records = as_records(summaries)
    per_part = {p.name: dict(o.split("=", 1) for o in p.overrides if "=" in o) for p in study.parts}
    entries = []
    for key in BUDGET_KEYS:
        values = {part: sets[key] for part, sets in per_part.items() if key in sets}
        if len(set(values.values())) == 1 and len(values) == len(per_part):
            entries.append(f"{key}={next(iter(values.values()))}")
        elif values:  # parts that differ (or set it only for some) are named
            entries.append(f"{key}: " + ", ".join(f"{v} ({part})" for part, v in values.items()))
    budget = ", ".join(entries) or "the configs' defaults"
    # runs kept from an earlier protocol of the study (their budget overrides differ from today's)
    older = sum(
        1
        for s in records
        if any(
            k in BUDGET_KEYS and per_part.get(s.part or "", {}).get(k, v) != v
            for k, v in (o.split("=", 1) for o in s.overrides if "=" in o)
        )
    )
    if older:
        budget += f" ({older} runs were trained with another budget: see the columns of the tables below)"
    tracked = [s for s in records if s.completed and s.converged is not None]
    open_ended = sum(1 for s in tracked if s.converged is False)
    stopped = sum(1 for s in tracked if s.stopped_early)
    if not tracked:
        return f"Budget: {budget}. (These runs predate the record of validation curves: convergence is not known.)"
    return (
        f"Budget: {budget}. Of {len(tracked)} runs, {stopped} were stopped early, and {open_ended} had not "
        "converged: their monitored validation metric last improved within the early-stopping patience (1 "
        "epoch without early stopping) of their final epoch (budget-limited: no verdict for cells that include "
        "them)."
    )


def validation_curves(c: Comparison) -> dict[str, tuple[list[int], list[float], str]]:
    """Per group: the mean over its runs of the monitored validation metric per epoch."""
    curves = {}
    for g in c.groups:
        histories = [r.history for r in g.runs if r.history]
        if not histories:
            continue
        monitor = next(k for k in histories[0] if k != "epoch")
        length = min(len(h["epoch"]) for h in histories)
        mean = [statistics.fmean(h[monitor][i] for h in histories) for i in range(length)]
        label = ", ".join(f"{a}={v}" for a, v in zip(c.axes, g.key)) or "all runs"
        curves[label] = (histories[0]["epoch"][:length], mean, monitor)
    return curves


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


# ---- reproduction against the previous report -------------------------------------------------
RESULTS = "results.json"
# a report from fewer runs than the committed one: written beside it, never over it
PARTIAL = "report.partial.md"


def group_means(c: Comparison) -> list[dict[str, Any]]:
    out = []
    for g in c.groups:
        mean, std, n = c.stats(g, c.primary)
        out.append(
            {
                "key": dict(zip(c.axes, g.key)),
                "metric": c.primary,
                "mean": _num(mean),
                "std": _num(std),
                "n": n,
            }
        )
    return out


def report_study(study: Study, outputs: Path) -> Path:
    parts = [(p, study.part_dir(outputs, p)) for p in study.parts]
    ran = [(p, d) for p, d in parts if d.exists()]
    if not ran:
        raise ConfigError(
            f"no runs of '{study.name}' in {study.runs_root(outputs)}; run `fuselab-study run {study.name}` first"
        )
    per_part: dict[str, list[RunRecord]] = {}
    for p, d in ran:
        per_part[p.name] = [s.replace(part=p.name) for s in find_summaries([d])]
    unreadable = [str(s.error) for found in per_part.values() for s in found if s.status is Status.UNREADABLE]
    per_part = {k: [s for s in found if s.status is not Status.UNREADABLE] for k, found in per_part.items()}
    summaries = [s for found in per_part.values() for s in found]
    ref = study.spec.get("reference") or {}
    results = [check_cell(c, summaries, study.metric) for c in ref.get("cells", [])]
    # plots are drawn into a fresh folder that replaces plots/ only when the report does
    plots = study.root / ".plots.new"
    if plots.exists():
        shutil.rmtree(plots)
    plots.mkdir()
    several = len(study.parts) > 1
    unchecked = any(not r.checked for r in results)
    lines = [
        f"# {study.name}: report",
        "",
        f"{study.spec.get('question', '').strip()}",
        "",
        (
            f"Measured by `fuselab-study run {study.name}` then `fuselab-study report {study.name}`: "
            f"{run_counts(summaries)}. Cells are mean ± std (ddof=1) over the runs that match."
        ),
    ]
    lines += ["", budget_line(study, summaries)]
    missing = [p.name for p, d in parts if not d.exists()]
    if missing:
        lines += ["", f"Parts not run yet: {', '.join(missing)}."]
    short = [
        f"{p.name} ({len(per_part[p.name])} of {n})"
        for p, _ in ran
        if (n := expected_jobs(p.overrides)) is not None and len(per_part[p.name]) < n
    ]
    if short:
        lines += ["", f"Parts with fewer runs than their sweep launches: {', '.join(short)}."]
    if unreadable:
        lines += ["", "Left out, unreadable: " + "; ".join(unreadable) + "."]
    lines += [
        "",
        f"## Against the reference ({ref['source']})" if ref.get("source") else "## Reference",
        "",
    ]
    if results:
        compact = side_by_side(results)
        lines += [*compact, ""] if compact else []
        cells = []
        for r in results:
            where = group_name(r.where)
            mark = {True: "yes", False: "**no**", None: "-"}[r.agrees] + ("" if r.checked else " (reference unchecked)")
            if r.close:
                mark += f" (within 2 SE: {r.separation:+.1f})"
            if r.budget_limited:
                mark = f"budget-limited ({r.budget_limited} runs had not converged at their epoch cap)"
            cells.append([where, r.metric, format_cell(r), r.reference, mark])
        lines.append(markdown_table(["cell", "metric", "measured", "reference", "agrees"], cells))
        agreed = [r.agrees for r in results if r.agrees is not None]
        limited = sum(1 for r in results if r.budget_limited)
        not_run = len(results) - len(agreed) - limited
        tail = (
            (f"; {limited} budget-limited (no verdict: runs had not converged at their epoch cap)" if limited else "")
            + (f"; {not_run} not run" if not_run else "")
            + "."
        )
        lines += ["", f"{sum(agreed)} of {len(agreed)} cells agree" + tail]
        close = sum(1 for r in results if r.close)
        if close:
            lines += [
                "",
                (
                    f"Within 2 SE ({close} of the verdicts): the cell's mean is less than two standard errors "
                    "of the difference (each side's std/√n) from its threshold, the closest baseline's mean "
                    "moved by the cell's margin if it has one; the signed number is that distance in those "
                    "units, positive on the agreeing side. The seeds do not separate them: such a verdict is "
                    "the sign of a difference, not a finding; more seeds would settle it."
                ),
            ]
        if unchecked:
            lines += [
                "",
                (
                    "*(reference unchecked)*: the reference number could not be verified against the paper "
                    "itself; the study's README says where it comes from."
                ),
            ]
    else:
        lines += ["This study has no reference cells: the measured numbers stand alone (see its README)."]
    current: dict[str, Any] = {"study": study.name, "groups": {}, "cells": []}
    for p, _ in ran:
        found = per_part[p.name]
        if not any(s.completed for s in found):
            lines += [
                "",
                f"## All groups{': ' + p.name if several else ''}",
                "",
                "No completed run yet.",
                "",
            ]
            continue
        comparison = compare_summaries(found, p.metric)
        current["groups"][p.name] = group_means(comparison)
        shares = [m for m in comparison.metrics if m.startswith(CONTRIBUTION_PREFIXES)]
        plain = [comparison.primary] + [
            m for m in comparison.metrics if m != comparison.primary and m.startswith("test/") and m not in shares
        ]
        header, body = rows(comparison, plain)
        title = f"## All groups{': ' + p.name if several else ''} ({comparison.primary} first)"
        lines += ["", title, "", markdown_table(header, body)]
        if shares:  # contributions=true: a table of its own, one row per cell
            header, body = rows(comparison, shares)
            lines += [
                "",
                f"## Modality contributions{': ' + p.name if several else ''}",
                "",
                "Shapley value per modality, interaction per pair, and each modality's score alone "
                "(`contributions.json` of each run holds every subset).",
                "",
                markdown_table(header, body),
            ]
        tmp = outputs / "studies" / study.name / "compare" / p.name
        for w in write_outputs(comparison, tmp):
            if w.suffix == ".png":
                shutil.copy(w, plots / (f"{p.name}_{w.name}" if several else w.name))
        curves = validation_curves(comparison)
        if curves:
            from fuselab.reports.plots import curves_png

            monitor = next(iter(curves.values()))[2]
            curves_png(
                {k: v[:2] for k, v in curves.items()},
                monitor,
                plots / (f"{p.name}_curves.png" if several else "curves.png"),
            )
    current["cells"] = [
        {
            "where": r.where,
            "metric": r.metric,
            "mean": _num(r.mean),
            "std": _num(r.std),
            "n": r.n,
            "reference": r.reference,
            "citation": r.citation,
            "agrees": r.agrees,
            "checked": r.checked,
        }
        for r in results
    ]
    current["written_at"] = _now()
    current["runs"] = runs_digest(summaries)
    previous_path = study.root / RESULTS
    tolerance = float(study.spec.get("reproduce_tolerance", 0.02))
    baseline = comparison_baseline(previous_path, current["runs"])
    if baseline:
        current["compared_with"] = baseline
        lines += [
            "",
            "## Against the previous report",
            "",
            (
                f"The previous `{RESULTS}` holds the measured group means of the last report from other runs; "
                f"a re-run is expected to land within ±{tolerance} of each (`reproduce_tolerance`)."
            ),
            "",
        ]
        lines += reproduction_lines(baseline, current, tolerance)
    lost = lacking(previous_path, current)
    if lost:
        lines += [
            "",
            "## Partial: the previous report was kept",
            "",
            f"`report.md` and `{RESULTS}` were not written over: the previous report holds numbers these runs "
            f"lack ({'; '.join(lost)}). Run the missing jobs (`fuselab-study run {study.name}`; finished jobs are "
            "skipped), then report again.",
        ]
    final = study.root / ("plots.partial" if lost else "plots")
    pngs = sorted(p.name for p in plots.glob("*.png"))
    lines += ["", "## Plots", ""] + [f"![{Path(n).stem}]({final.name}/{n})" for n in pngs] + [""]
    if final.exists():
        shutil.rmtree(final)
    plots.rename(final)
    out = study.root / (PARTIAL if lost else "report.md")
    out.write_text("\n".join(lines))
    if not lost:
        previous_path.write_text(json.dumps(current, indent=1) + "\n")
        (study.root / PARTIAL).unlink(missing_ok=True)
        shutil.rmtree(study.root / "plots.partial", ignore_errors=True)
    return out


def run_counts(summaries: Sequence[RunRecord | dict[str, Any]]) -> str:
    """``12 runs (10 completed, 1 failed, 1 running)``."""
    counts: dict[str, int] = {}
    for s in as_records(summaries):
        counts[str(s.status)] = counts.get(str(s.status), 0) + 1
    order = sorted(counts, key=lambda k: (k != Status.COMPLETED.value, k))
    return f"{len(summaries)} runs ({', '.join(f'{counts[k]} {k}' for k in order) or 'none'})"


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")
