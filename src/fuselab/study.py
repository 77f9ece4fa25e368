"""``fuselab-study``: studies that reproduce a protocol and compare with reference numbers.

    fuselab-study list
    fuselab-study run NAME [override ...]     # a resumable sweep (the same command resumes)
    fuselab-study report NAME                 # writes experiments/NAME/report.md and plots

A study is a folder ``experiments/NAME/`` with a README (question, protocol, sources) and
``study.yaml``::

    name, question, metric (e.g. test/acc), axes (the settings a cell is grouped by)
    sweep: [override, ...]            # the fuselab-train -m arguments
    requires: text                    # data a user must provide (null: runs anywhere)
    reference:
      source: citation of the numbers
      cells:
        - where: {fusion: early, data.interaction: synergy}
          metric: test/acc            # default: the study's metric
          value: 0.732 / tolerance: 0.02    # a published number: agree when |measured - value| <= tolerance
          min: 0.65 / max: 0.40             # or a known answer: agree when inside the bounds
          citation: ..., checked: true|false  (false: not verified against the paper itself)

Measured cells are mean ± std (ddof=1) over the runs that match ``where`` (seeds, and any axis
not named).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from fuselab.compare import compare_runs, find_summaries, rows, settings, write_outputs

console = Console()


@dataclass
class Study:
    root: Path
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def metric(self) -> str:
        return str(self.spec.get("metric", "test/acc"))

    def runs_dir(self, outputs: Path) -> Path:
        return outputs / "studies" / self.name / "multiruns" / "runs"


def load_study(name: str, experiments: Path) -> Study:
    folder = experiments / name
    path = folder / "study.yaml"
    if not path.is_file():
        known = sorted(p.parent.name for p in experiments.glob("*/study.yaml"))
        raise ValueError(f"no study '{name}' in {experiments} (it has: {known})")
    spec = yaml.safe_load(path.read_text())
    for key in ("name", "sweep", "metric"):
        if key not in spec:
            raise ValueError(f"{path} has no '{key}'")
    return Study(folder, spec)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def sweep_command(study: Study, outputs: Path, extra: Sequence[str] = ()) -> list[str]:
    """The study's sweep; an extra override replaces the sweep's entry for the same key."""
    replaced = {_key(o) for o in extra}
    sweep = [o for o in study.spec["sweep"] if _key(o) not in replaced]
    return [sys.executable, "-m", "fuselab.train", "-m", *sweep, *extra, f"task_name={study.name}",
            "sweep_name=runs", f"paths.log_dir={outputs / 'studies'}"]  # fmt: skip


def run_study(study: Study, outputs: Path, extra: Sequence[str] = ()) -> int:
    cmd = sweep_command(study, outputs, extra)
    console.print("running: " + " ".join(cmd[1:]), soft_wrap=True, highlight=False)
    return subprocess.call(cmd)


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


def check_cell(cell: dict[str, Any], summaries: list[dict[str, Any]], default_metric: str) -> CellResult:
    metric = cell.get("metric", default_metric)
    where = dict(cell.get("where") or {})
    values = [s["metrics"][metric] for s in summaries if s.get("status") == "completed"
              and _matches(settings(s), where) and isinstance(s.get("metrics", {}).get(metric), (int, float))]  # fmt: skip
    mean = statistics.fmean(values) if values else math.nan
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    agrees: bool | None
    if not values:
        agrees, ref = None, "-"
    if "value" in cell:
        tol = float(cell.get("tolerance", 0.0))
        ref = f"{cell['value']} ± {tol}"
        agrees = None if not values else abs(mean - float(cell["value"])) <= tol
    else:
        lo, hi = cell.get("min"), cell.get("max")
        ref = " and ".join(p for p in (f">= {lo}" if lo is not None else "", f"<= {hi}" if hi is not None else "") if p)
        agrees = None if not values else (lo is None or mean >= float(lo)) and (hi is None or mean <= float(hi))
    return CellResult(where, metric, mean, std, len(values), ref, agrees, str(cell.get("citation", "")),
                      bool(cell.get("checked", True)))  # fmt: skip


def _fmt(r: CellResult) -> str:
    if r.n == 0:
        return "not run"
    return f"{r.mean:.4f}" + ("" if math.isnan(r.std) else f" ± {r.std:.4f}") + f" (n={r.n})"


def report_study(study: Study, outputs: Path) -> Path:
    runs = study.runs_dir(outputs)
    if not runs.exists():
        raise ValueError(f"no runs of '{study.name}' in {runs}; run `fuselab-study run {study.name}` first")
    summaries = find_summaries([runs])
    ref = study.spec.get("reference") or {}
    results = [check_cell(c, summaries, study.metric) for c in ref.get("cells", [])]
    plots = study.root / "plots"
    comparison = compare_runs([runs], study.metric)
    tmp = outputs / "studies" / study.name / "compare"
    written = write_outputs(comparison, tmp)
    if plots.exists():
        shutil.rmtree(plots)
    plots.mkdir()
    for p in written:
        if p.suffix == ".png":
            shutil.copy(p, plots / p.name)
    header, body = rows(comparison)
    failed = sum(s.get("status") != "completed" for s in summaries)
    lines = [
        f"# {study.name}: report", "",
        f"{study.spec.get('question', '').strip()}", "",
        f"Measured by `fuselab-study run {study.name}` then `fuselab-study report {study.name}`: "
        f"{len(summaries)} runs ({failed} not completed). Cells are mean ± std (ddof=1) over the runs that match.",
        "", f"## Against the reference ({ref.get('source', 'no source given')})", "",
        "| cell | metric | measured | reference | agrees |", "|---|---|---|---|---|",
    ]  # fmt: skip
    for r in results:
        where = ", ".join(f"{k}={v}" for k, v in r.where.items()) or "all runs"
        mark = {True: "yes", False: "**no**", None: "-"}[r.agrees] + ("" if r.checked else " (reference unchecked)")
        lines.append(f"| {where} | {r.metric} | {_fmt(r)} | {r.reference} | {mark} |")
    agreed = [r.agrees for r in results if r.agrees is not None]
    lines += ["", f"{sum(agreed)} of {len(agreed)} cells agree" + (f"; {len(results) - len(agreed)} not run." if len(agreed) < len(results) else "."), ""]
    lines += [f"## All groups ({study.metric} first)", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    lines += ["", "## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in sorted(plots.glob("*.png"))] + [""]
    out = study.root / "report.md"
    out.write_text("\n".join(lines))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fuselab-study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", default="experiments", help="the folder of studies")
    parser.add_argument("--outputs", default=os.environ.get("FUSELAB_OUTPUTS", "outputs"), help="where runs go")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list")
    run = sub.add_parser("run")
    run.add_argument("name")
    run.add_argument("overrides", nargs="*", help="extra fuselab-train overrides (e.g. data.path=...)")
    rep = sub.add_parser("report")
    rep.add_argument("name")
    a = parser.parse_args(argv)
    experiments, outputs = Path(a.experiments), Path(a.outputs).resolve()
    try:
        if a.command == "list":
            for p in sorted(experiments.glob("*/study.yaml")):
                spec = yaml.safe_load(p.read_text())
                console.print(f"{spec['name']}: {spec.get('question', '').strip().splitlines()[0]}", highlight=False)
            return 0
        study = load_study(a.name, experiments)
        if a.command == "run":
            return run_study(study, outputs, a.overrides)
        path = report_study(study, outputs)
        console.print(f"wrote {path}")
        return 0
    except ValueError as exc:
        console.print(f"[bold red]fuselab-study: error:[/] {exc}", soft_wrap=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
