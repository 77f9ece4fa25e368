"""The report half of ``fuselab-study``: reference cells checked against the runs, the tables
of ``report.md`` (side by side as the paper lays them out, per cell, per part), plots, and
``results.json`` with the comparison against the committed one (``reproduce_tolerance``)."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuselab.errors import ConfigError
from fuselab.reports.compare import Comparison, compare_summaries, find_summaries, rows, settings, write_outputs
from fuselab.reports.studies.spec import Study
from fuselab.reports.tables import markdown_table


# ---- reference cells ---------------------------------------------------------------------------
@dataclass
class CellResult:
    where: dict[str, Any]
    metric: str
    mean: float
    std: float
    n: int
    reference: str
    agrees: bool | None
    citation: str
    checked: bool


def _matches(s: dict[str, str], where: dict[str, Any]) -> bool:
    return all(str(s.get(k)) == str(v) for k, v in where.items())


def _cell_settings(summary: dict[str, Any]) -> dict[str, str]:
    out = settings(summary)
    if summary.get("_study_part"):
        out["part"] = str(summary["_study_part"])
    return out


def _values(summaries: list[dict[str, Any]], where: dict[str, Any], metric: str) -> list[float]:
    return [
        s["metrics"][metric]
        for s in summaries
        if s.get("status") == "completed"
        and _matches(_cell_settings(s), where)
        and isinstance(s.get("metrics", {}).get(metric), (int, float))
        and not math.isnan(s["metrics"][metric])
    ]


def check_cell(cell: dict[str, Any], summaries: list[dict[str, Any]], default_metric: str) -> CellResult:
    """One reference cell against the runs that match its ``where``. Kinds: ``value`` ±
    ``tolerance`` (a published number), ``min``/``max`` (known-answer bounds), or ``above``: one
    or more other groups of the same study (e.g. the unimodal baselines) whose mean the cell's
    mean must exceed."""
    metric = cell.get("metric", default_metric)
    where = dict(cell.get("where") or {})
    values = _values(summaries, where, metric)
    mean = statistics.fmean(values) if values else math.nan
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    agrees: bool | None
    if "value" in cell:
        tol = float(cell.get("tolerance", 0.0))
        ref = f"{cell['value']} ± {tol}"
        agrees = None if not values else abs(mean - float(cell["value"])) <= tol
    elif "above" in cell:
        others = cell["above"] if isinstance(cell["above"], list) else [cell["above"]]
        parts, means = [], []
        for other in others:
            vals = _values(summaries, dict(other), metric)
            means.append(statistics.fmean(vals) if vals else math.nan)
            name = ", ".join(f"{k}={v}" for k, v in other.items())
            parts.append(f"{means[-1]:.4f} ({name})" if vals else f"not run ({name})")
        ref = "> " + " and ".join(parts)
        agrees = None if not values or any(math.isnan(m) for m in means) else mean > max(means)
    else:
        lo, hi = cell.get("min"), cell.get("max")
        ref = " and ".join(p for p in (f">= {lo}" if lo is not None else "", f"<= {hi}" if hi is not None else "") if p)
        agrees = None if not values else (lo is None or mean >= float(lo)) and (hi is None or mean <= float(hi))
    return CellResult(
        where,
        metric,
        mean,
        std,
        len(values),
        ref,
        agrees,
        str(cell.get("citation", "")),
        bool(cell.get("checked", True)),
    )


def _fmt(r: CellResult) -> str:
    if r.n == 0:
        return "not run"
    return f"{r.mean:.4f}" + ("" if math.isnan(r.std) else f" ± {r.std:.4f}") + f" (n={r.n})"


def side_by_side(results: list[CellResult]) -> list[str]:
    """The reference cells as the paper lays them out: a row per setting, a column per metric,
    each entry "measured / published" with a mark. Empty when no setting has two metrics."""
    table: list[tuple[tuple, dict[str, CellResult]]] = []
    for r in results:
        key = tuple(r.where.items())
        row = next((cells for where, cells in table if where == key and r.metric not in cells), None)
        if row is None:  # a second reference for the same setting and metric gets a row of its own
            row = {}
            table.append((key, row))
        row[r.metric] = r
    if all(len(cells) < 2 for _, cells in table):
        return []
    metrics = list(dict.fromkeys(r.metric for r in results))
    body = []
    for where, cells in table:
        entries = []
        for m in metrics:
            r = cells.get(m)
            if r is None:
                entries.append("")
                continue
            ref = r.reference.split(" ± ")[0]
            measured = "-" if r.n == 0 else f"{r.mean:.3f}"
            unchecked = "" if r.checked else " †"
            entries.append(f"{measured} / {ref}{unchecked} {({True: '✓', False: '✗', None: '·'})[r.agrees]}")
        body.append([", ".join(f"{k}={v}" for k, v in where) or "all runs", *entries])
    header = ["setting", *(m.split("/")[-1] for m in metrics)]
    legend = "Side by side (measured mean / reference; ✓ agrees, ✗ does not, · not run"
    legend += "; † reference unchecked):" if any(not r.checked for r in results) else "):"
    return [legend, "", markdown_table(header, body)]


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


# ---- reproduction against the previous report -------------------------------------------------
RESULTS = "results.json"


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


def reproduction_lines(previous: dict[str, Any], current: dict[str, Any], tolerance: float) -> list[str]:
    """Each group's mean of the primary metric against the same group in the earlier results.json."""
    before = {
        (part, json.dumps(g["key"], sort_keys=True)): g for part, gs in previous.get("groups", {}).items() for g in gs
    }
    moved: list[list[str]] = []
    within, compared, worst = 0, 0, 0.0
    for part, gs in current["groups"].items():
        for g in gs:
            old = before.get((part, json.dumps(g["key"], sort_keys=True)))
            if old is None or old.get("mean") is None or g["mean"] is None:
                continue
            diff = g["mean"] - old["mean"]
            compared += 1
            worst = max(worst, abs(diff))
            if abs(diff) <= tolerance:
                within += 1
            else:
                name = ", ".join(f"{k}={v}" for k, v in g["key"].items()) or "all runs"
                moved.append([part, name, g["metric"], f"{old['mean']:.4f}", f"{g['mean']:.4f}", f"{diff:+.4f}"])
    if not compared:
        return ["No group of this report matches a group of the previous one.", ""]
    head = [
        (
            f"{within} of {compared} groups are within ±{tolerance} of the previous report "
            f"(written {previous.get('written_at', '?')}); the largest difference is {worst:.4f}."
        ),
        "",
    ]
    if moved:
        head += [markdown_table(["part", "group", "metric", "previous", "now", "difference"], moved), ""]
    return head


def report_study(study: Study, outputs: Path) -> Path:
    parts = [(p, study.part_dir(outputs, p)) for p in study.parts]
    ran = [(p, d) for p, d in parts if d.exists()]
    if not ran:
        raise ConfigError(
            f"no runs of '{study.name}' in {study.runs_root(outputs)}; run `fuselab-study run {study.name}` first"
        )
    per_part: dict[str, list[dict[str, Any]]] = {}
    for p, d in ran:
        found = find_summaries([d])
        for s in found:
            s["_study_part"] = p.name
        per_part[p.name] = found
    summaries = [s for found in per_part.values() for s in found]
    ref = study.spec.get("reference") or {}
    results = [check_cell(c, summaries, study.metric) for c in ref.get("cells", [])]
    plots = study.root / "plots"
    if plots.exists():
        shutil.rmtree(plots)
    plots.mkdir()
    several = len(study.parts) > 1
    failed = sum(s.get("status") != "completed" for s in summaries)
    unchecked = any(not r.checked for r in results)
    lines = [
        f"# {study.name}: report",
        "",
        f"{study.spec.get('question', '').strip()}",
        "",
        (
            f"Measured by `fuselab-study run {study.name}` then `fuselab-study report {study.name}`: "
            f"{len(summaries)} runs ({failed} not completed). Cells are mean ± std (ddof=1) over the runs that match."
        ),
    ]
    missing = [p.name for p, d in parts if not d.exists()]
    if missing:
        lines += ["", f"Parts not run yet: {', '.join(missing)}."]
    lines += [
        "",
        f"## Against the reference ({ref.get('source', 'no source given')})",
        "",
    ]
    if results:
        compact = side_by_side(results)
        lines += [*compact, ""] if compact else []
        cells = []
        for r in results:
            where = ", ".join(f"{k}={v}" for k, v in r.where.items()) or "all runs"
            mark = {True: "yes", False: "**no**", None: "-"}[r.agrees] + ("" if r.checked else " (reference unchecked)")
            cells.append([where, r.metric, _fmt(r), r.reference, mark])
        lines.append(markdown_table(["cell", "metric", "measured", "reference", "agrees"], cells))
        agreed = [r.agrees for r in results if r.agrees is not None]
        tail = f"; {len(results) - len(agreed)} not run." if len(agreed) < len(results) else "."
        lines += ["", f"{sum(agreed)} of {len(agreed)} cells agree" + tail]
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
        if not any(s.get("status") == "completed" for s in found):
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
        header, body = rows(comparison)
        title = f"## All groups{': ' + p.name if several else ''} ({comparison.primary} first)"
        lines += ["", title, "", markdown_table(header, body)]
        tmp = outputs / "studies" / study.name / "compare" / p.name
        for w in write_outputs(comparison, tmp):
            if w.suffix == ".png":
                shutil.copy(w, plots / (f"{p.name}_{w.name}" if several else w.name))
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
    previous_path = study.root / RESULTS
    tolerance = float(study.spec.get("reproduce_tolerance", 0.02))
    if previous_path.exists():
        try:
            previous = json.loads(previous_path.read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous:
            lines += [
                "",
                "## Against the previous report",
                "",
                (
                    f"The committed `{RESULTS}` is the previous report's measured group means; a re-run is "
                    f"expected to land within ±{tolerance} of each (`reproduce_tolerance`)."
                ),
                "",
            ]
            lines += reproduction_lines(previous, current, tolerance)
    lines += ["", "## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in sorted(plots.glob("*.png"))] + [""]
    out = study.root / "report.md"
    out.write_text("\n".join(lines))
    previous_path.write_text(json.dumps(current, indent=1) + "\n")
    return out


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")
