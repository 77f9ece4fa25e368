"""A study report against the reports before it: which earlier ``results.json`` to compare with,
how far each group moved (``reproduce_tolerance``), and whether a new report is from fewer runs
than the committed one (then it must not replace it)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fuselab.reports.studies.cells import group_name
from fuselab.reports.tables import markdown_table
from fuselab.training.summary import RunRecord, as_records


def _same_on_shared(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a[k] == b[k] for k in a.keys() & b.keys())


def _counterpart(old_groups: list[dict[str, Any]], key: dict[str, Any]) -> dict[str, Any] | None:
    """The previous group with this key; failing that, the only one that agrees with it on the
    columns both have (a column such as ``trainer.max_epochs`` appears only while it varies)."""
    for g in old_groups:
        if g["key"] == key:
            return g
    near = [g for g in old_groups if _same_on_shared(g["key"], key)]
    return near[0] if len(near) == 1 else None


def reproduction_lines(previous: dict[str, Any], current: dict[str, Any], tolerance: float) -> list[str]:
    """Each group's mean of the primary metric against the same group in the earlier results.json;
    the earlier groups left without a counterpart are named, not dropped silently."""
    before = previous.get("groups", {})
    used: set[int] = set()
    moved: list[list[str]] = []
    within, compared, worst = 0, 0, 0.0
    for part, gs in current["groups"].items():
        for g in gs:
            old = _counterpart(before.get(part, []), g["key"])
            if old is None:
                continue
            used.add(id(old))
            if old.get("mean") is None or g["mean"] is None:
                continue
            diff = g["mean"] - old["mean"]
            compared += 1
            worst = max(worst, abs(diff))
            if abs(diff) <= tolerance:
                within += 1
            else:
                moved.append(
                    [part, group_name(g["key"]), g["metric"], f"{old['mean']:.4f}", f"{g['mean']:.4f}", f"{diff:+.4f}"]
                )
    unmatched = [f"{part}: {group_name(g['key'])}" for part, gs in before.items() for g in gs if id(g) not in used]
    tail = (
        [
            f"Not compared ({len(unmatched)} groups of the previous report have no single counterpart here): "
            + "; ".join(unmatched)
            + ".",
            "",
        ]
        if unmatched
        else []
    )
    if not compared:
        return ["No group of this report matches a group of the previous one.", "", *tail]
    head = [
        (
            f"{within} of {compared} groups are within ±{tolerance} of the previous report "
            f"(written {previous.get('written_at', '?')}); the largest difference is {worst:.4f}."
        ),
        "",
    ]
    if moved:
        head += [markdown_table(["part", "group", "metric", "previous", "now", "difference"], moved), ""]
    return head + tail


def runs_digest(summaries: Sequence[RunRecord | dict[str, Any]]) -> str:
    """Which runs a report was made from (part, directory, config, finish time), as one short hash."""
    keys = sorted(f"{s.part}/{Path(s.run_dir).name}/{s.config_hash}/{s.finished_at}" for s in as_records(summaries))
    return hashlib.sha1("\n".join(keys).encode()).hexdigest()[:16]


def comparison_baseline(path: Path, runs: str) -> dict[str, Any] | None:
    """The report to compare with: the one in ``results.json``, unless that one was made from these
    very runs (a report regenerated twice), in which case the report it was compared with."""
    try:
        previous = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if previous.get("runs") == runs:
        return previous.get("compared_with")
    return {"written_at": previous.get("written_at", "?"), "groups": previous.get("groups", {})}


def lacking(previous_path: Path, current: dict[str, Any]) -> list[str]:
    """What the committed results.json measured that ``current`` does not: a group or a cell with
    fewer runs (or none). A partial report must not replace a fuller one."""
    try:
        previous = json.loads(previous_path.read_text())
    except (OSError, json.JSONDecodeError):
        return []
    lost = []
    for part, groups in (previous.get("groups") or {}).items():
        now = current["groups"].get(part, [])
        for g in groups:
            if not g.get("n"):
                continue
            match = next((c for c in now if c["key"] == g["key"]), None)
            have = match["n"] if match else 0
            if have < g["n"]:
                lost.append(f"{part}: {group_name(g['key']) or 'all'} had {g['n']} runs, now {have}")
    now_cells = {(json.dumps(c["where"], sort_keys=True), c["metric"]): c for c in current.get("cells", [])}
    for c in previous.get("cells") or []:
        match = now_cells.get((json.dumps(c.get("where"), sort_keys=True), c.get("metric")))
        if c.get("n") and (match is None or (match.get("n") or 0) < c["n"]):
            lost.append(f"cell {group_name(c.get('where') or {})} had {c['n']} runs, now {(match or {}).get('n') or 0}")
    return lost
