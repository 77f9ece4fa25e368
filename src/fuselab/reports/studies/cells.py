"""Reference cells of a study checked against its runs: a published value within a tolerance,
known-answer bounds, or beating other groups (baselines); no verdict where runs had not
converged; the side-by-side table laid out as the paper lays it out."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fuselab.reports.compare import settings
from fuselab.reports.tables import markdown_table
from fuselab.training.summary import RunRecord, as_records


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
    # runs of the cell that had not converged (best validation value within the patience of their end)
    budget_limited: int = 0
    # above/below cells: how far the cell clears (or misses) its closest baseline, in standard
    # errors of the difference of the two means; None when either has a single run
    separation: float | None = None

    @property
    def close(self) -> bool:
        """A verdict the seeds do not support: under 2 standard errors from the closest baseline."""
        return self.agrees is not None and self.separation is not None and abs(self.separation) < 2


def group_name(settings: Any) -> str:
    """``k=v, k=v`` for a group's settings (a dict or its items); "all runs" when it has none."""
    items = settings.items() if isinstance(settings, dict) else settings
    return ", ".join(f"{k}={v}" for k, v in items) or "all runs"


def _matches(s: dict[str, str], where: dict[str, Any]) -> bool:
    return all(str(s.get(k)) == str(v) for k, v in where.items())


def _cell_settings(record: RunRecord) -> dict[str, str]:
    out = settings(record)
    if record.part:
        out["part"] = record.part
    return out


def _values(records: list[RunRecord], where: dict[str, Any], metric: str) -> list[float]:
    return [
        s.metrics[metric] for s in records if s.completed and metric in s.metrics and _matches(_cell_settings(s), where)
    ]


def _not_converged(records: list[RunRecord], where: dict[str, Any]) -> int:
    return sum(1 for s in records if s.completed and s.converged is False and _matches(_cell_settings(s), where))


def check_cell(
    cell: dict[str, Any], summaries: Sequence[RunRecord | dict[str, Any]], default_metric: str
) -> CellResult:
    """One reference cell against the runs that match its ``where``. Kinds: ``value`` ±
    ``tolerance`` (a published number), ``min``/``max`` (known-answer bounds), ``above`` or
    ``below``: one or more other groups of the same study (e.g. the unimodal baselines) whose
    means the cell's mean must exceed (``above``; accuracies) or stay under (``below``; error
    rates), by at least ``margin`` (default 0)."""
    summaries = as_records(summaries)
    metric = cell.get("metric", default_metric)
    where = dict(cell.get("where") or {})
    values = _values(summaries, where, metric)
    mean = statistics.fmean(values) if values else math.nan
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    agrees: bool | None
    separation: float | None = None
    if "value" in cell:
        tol = float(cell.get("tolerance", 0.0))
        ref = f"{cell['value']} ± {tol}"
        agrees = None if not values else abs(mean - float(cell["value"])) <= tol
    elif "above" in cell or "below" in cell:
        side = "above" if "above" in cell else "below"
        margin = float(cell.get("margin", 0.0))
        others = cell[side] if isinstance(cell[side], list) else [cell[side]]
        parts, means, spreads = [], [], []
        for other in others:
            vals = _values(summaries, dict(other), metric)
            means.append(statistics.fmean(vals) if vals else math.nan)
            spreads.append(statistics.variance(vals) / len(vals) if len(vals) > 1 else math.nan)
            name = group_name(other)
            parts.append(f"{means[-1]:.4f} ({name})" if vals else f"not run ({name})")
        by = f" by {margin}" if margin else ""
        ref = ("> " if side == "above" else "< ") + " and ".join(parts) + by
        if not values or any(math.isnan(m) for m in means):
            agrees = None
        else:
            closest = means.index(max(means) if side == "above" else min(means))
            clear = (mean - means[closest] - margin) if side == "above" else (means[closest] - margin - mean)
            agrees = clear > 0
            se = math.sqrt(std**2 / len(values) + spreads[closest]) if len(values) > 1 else math.nan
            separation = clear / se if se > 0 else None  # a single run on either side: se is NaN
    else:
        lo, hi = cell.get("min"), cell.get("max")
        ref = " and ".join(p for p in (f">= {lo}" if lo is not None else "", f"<= {hi}" if hi is not None else "") if p)
        agrees = None if not values else (lo is None or mean >= float(lo)) and (hi is None or mean <= float(hi))
    # a cell whose runs (or whose baselines' runs) were still improving gets no verdict
    baselines = cell.get("above") or cell.get("below") or []
    baselines = [baselines] if isinstance(baselines, dict) else baselines
    limited = _not_converged(summaries, where) + sum(_not_converged(summaries, dict(o)) for o in baselines)
    if limited:
        agrees = None
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
        limited,
        None if limited else separation,
    )


def format_cell(r: CellResult) -> str:
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
        body.append([group_name(where), *entries])
    header = ["setting", *short_names(metrics)]
    legend = "Side by side (measured mean / reference; ✓ agrees, ✗ does not, · not run"
    legend += "; † reference unchecked):" if any(not r.checked for r in results) else "):"
    return [legend, "", markdown_table(header, body)]


def short_names(metrics: list[str]) -> list[str]:
    """Each metric without its stage (``test/acc`` -> ``acc``, ``test/shapley/acc/signal`` ->
    ``shapley/acc/signal``), or more of its name where another metric would share it."""
    out = []
    for m in metrics:
        parts = m.split("/")
        for k in range(max(1, len(parts) - 1), len(parts) + 1):
            tail = "/".join(parts[-k:])
            if not any(o != m and (o == tail or o.endswith("/" + tail)) for o in metrics):
                break
        out.append(tail)
    return out
