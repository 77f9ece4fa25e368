"""``fuselab-study``: studies that reproduce a protocol and compare with reference numbers.

    fuselab-study list
    fuselab-study run NAME [--part P] [override ...]   # resumable sweeps (the same command resumes);
                                                       # PART:key=value overrides one part only
    fuselab-study report NAME                          # experiments/NAME/report.md, results.json, plots

A study is a folder ``experiments/NAME/`` with a README (question, protocol, sources) and
``study.yaml``::

    name, question, metric (e.g. test/acc), axes (the settings a cell is grouped by)
    sweep: [override, ...]            # the fuselab-train -m arguments (shared by every part)
    parts:                            # optional: several sweeps, each a cartesian product
      aligned:                        # a list of overrides (block style: flow lists split on commas)
        - data=mosi,mosei
        - fusion=early,late
      unaligned: {sweep: ["data=mosi_unaligned", "fusion=late"], metric: test/acc2}
    requires: text                    # data a user must provide (null: runs anywhere)
    reproduce_tolerance: 0.02         # how far a re-run's group means may move from results.json
    reference:
      source: citation of the numbers
      cells:
        - where: {fusion: early, data.interaction: synergy}   # any setting, or part: NAME
          metric: test/acc            # default: the study's metric
          value: 0.732 / tolerance: 0.02    # a published number: agree when |measured - value| <= tolerance
          min: 0.65 / max: 0.40             # or a known answer: agree when inside the bounds
          above: [{data.modalities: "[audio]"}]  # or beat other groups of the study (baselines)
          citation: ..., checked: true|false  (false: not verified against the paper itself)

A part's override replaces a shared one with the same key. Without ``parts`` the study is one
sweep named ``runs``. Measured cells are mean ± std (ddof=1) over the runs that match ``where``
(seeds, and any axis not named).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
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
from rich.markup import escape

from fuselab.compare import (
    Comparison,
    compare_summaries,
    find_summaries,
    rows,
    settings,
    write_outputs,
)

console = Console()
PART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass
class Part:
    name: str
    overrides: list[str]
    metric: str


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

    @property
    def parts(self) -> list[Part]:
        shared = list(self.spec.get("sweep") or [])
        declared = self.spec.get("parts")
        if not declared:
            return [Part("runs", shared, self.metric)]
        out = []
        for name, body in declared.items():
            if isinstance(body, dict):
                own, metric = (
                    list(body.get("sweep") or []),
                    str(body.get("metric", self.metric)),
                )
            else:
                own, metric = list(body or []), self.metric
            out.append(Part(str(name), merge_overrides(shared, own), metric))
        return out

    def runs_root(self, outputs: Path) -> Path:
        return outputs / "studies" / self.name / "multiruns"

    def part_dir(self, outputs: Path, part: Part) -> Path:
        return self.runs_root(outputs) / part.name


def load_study(name: str, experiments: Path) -> Study:
    folder = experiments / name
    path = folder / "study.yaml"
    if not path.is_file():
        known = sorted(p.parent.name for p in experiments.glob("*/study.yaml"))
        raise ValueError(f"no study '{name}' in {experiments} (it has: {known})")
    spec = yaml.safe_load(path.read_text())
    for key in ("name", "metric"):
        if key not in spec:
            raise ValueError(f"{path} has no '{key}'")
    if "sweep" not in spec and not spec.get("parts"):
        raise ValueError(f"{path} has neither 'sweep' nor 'parts'")
    parts = spec.get("parts") or {}
    if not isinstance(parts, dict):
        raise TypeError(f"{path}: 'parts' must map a name to a list of overrides, e.g. parts: {{aligned: [data=mosi]}}")
    for part in parts:
        if not PART_NAME.match(str(part)) or part == "attempts":
            raise ValueError(f"{path}: part name {part!r} must be letters, digits, '_' or '-' (it names a folder)")
    study = Study(folder, spec)
    for part in study.parts:
        bad = [o for o in part.overrides if not isinstance(o, str) or ("=" not in o and not o.startswith("~"))]
        if bad:
            raise ValueError(f"{path}: part '{part.name}' has entries that are not overrides: {bad}. A YAML flow "
                             "list ([a=1,2, b=3]) splits at every comma: write one override per line instead")  # fmt: skip
    return study


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def merge_overrides(base: Sequence[str], extra: Sequence[str]) -> list[str]:
    """``base`` then ``extra``, where an entry of ``extra`` replaces base's entry for the same key."""
    replaced = {_key(o) for o in extra}
    return [o for o in base if _key(o) not in replaced] + list(extra)


def scoped_overrides(study: Study, extra: Sequence[str], part: Part) -> list[str]:
    """The extra overrides that apply to ``part``: plain ones apply to every part, ``PART:key=value``
    only to that part (e.g. ``mmimdb:data.split_ends=[40,50,60]``)."""
    names = {p.name for p in study.parts}
    out = []
    for o in extra:
        scope, sep, rest = o.partition(":")
        if sep and "=" not in scope and scope in names:
            if scope == part.name:
                out.append(rest)
        elif sep and "=" not in scope and not scope.startswith(("+", "~")) and "." not in scope:
            raise ValueError(f"override {o!r} names part {scope!r}, but study '{study.name}' has parts {sorted(names)}")
        else:
            out.append(o)
    return out


def sweep_command(study: Study, outputs: Path, extra: Sequence[str] = (), part: Part | None = None) -> list[str]:
    """One part's sweep (the first part when none is named); ``extra`` replaces same-key entries."""
    part = part or study.parts[0]
    overrides = merge_overrides(part.overrides, scoped_overrides(study, extra, part))
    return [sys.executable, "-m", "fuselab.train", "-m", *overrides,
            f"task_name={study.name}", f"sweep_name={part.name}", f"paths.log_dir={outputs / 'studies'}"]  # fmt: skip


def select_parts(study: Study, only: Sequence[str] = ()) -> list[Part]:
    parts = study.parts
    unknown = sorted(set(only) - {p.name for p in parts})
    if unknown:
        raise ValueError(f"study '{study.name}' has no part {unknown}; its parts: {[p.name for p in parts]}")
    return [p for p in parts if not only or p.name in only]


DATA_FILES = ("path", "data_dir")


def _first_choice(override: str) -> str:
    key, _, value = override.partition("=")
    if "," in value and not value.startswith(("[", "{")):
        value = value.split(",")[0]
    return f"{key}={value}"


def preflight(study: Study, parts: Sequence[Part], extra: Sequence[str] = ()) -> list[str]:
    """The data files every part reads, checked before anything runs: each data choice of each
    part is composed (with the extra overrides) and its ``path``/``data_dir`` must be set and exist."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    problems = []
    with initialize_config_module(config_module="fuselab.conf", version_base="1.3"):
        for part in parts:
            overrides = merge_overrides(part.overrides, scoped_overrides(study, extra, part))
            choices = next((o.split("=", 1)[1].split(",") for o in overrides if o.startswith("data=")), [None])
            data_keys = [_first_choice(o) for o in overrides if o.startswith("data.")]
            for choice in choices:
                cfg = compose(config_name="train", overrides=[f"data={choice}"] * bool(choice) + data_keys)
                raw = OmegaConf.to_container(cfg.data, resolve=False)
                for key in DATA_FILES:
                    if key not in raw:
                        continue
                    value = cfg.data[key]
                    where = f"part '{part.name}', data={choice or cfg.data.get('_target_')}"
                    if value in (None, ""):
                        env = re.search(r"oc\.env:(\w+)", str(raw[key]))
                        how = f"export {env.group(1)}=<file>" if env else f"pass {part.name}:data.{key}=<file>"
                        problems.append(f"{where}: data.{key} is not set ({how})")
                    elif not Path(str(value)).expanduser().exists():
                        problems.append(f"{where}: data.{key}={value} does not exist")
    return problems


def run_study(study: Study, outputs: Path, extra: Sequence[str] = (), only: Sequence[str] = ()) -> int:
    """Runs the parts one after the other; a failing part does not stop the others. The data
    every part needs is checked first, so a missing file stops the study before any training."""
    selected = select_parts(study, only)
    commands = [(part, sweep_command(study, outputs, extra, part)) for part in selected]  # errors before any run
    problems = preflight(study, selected, extra)
    if problems:
        need = f" It needs: {study.spec['requires']}." if study.spec.get("requires") else ""
        raise ValueError(f"study '{study.name}' cannot run yet.{need}\n  " + "\n  ".join(problems))
    codes = {}
    for part, cmd in commands:
        console.print(
            f"[bold]{study.name} / {part.name}[/]: " + escape(" ".join(cmd[1:])), soft_wrap=True, highlight=False
        )
        codes[part.name] = subprocess.call(cmd)
    failed = [name for name, rc in codes.items() if rc != 0]
    if failed:
        console.print(f"[bold red]parts that exited non-zero:[/] {failed} (run the same command again to resume)")
    return next((codes[name] for name in failed), 0)


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
    return [s["metrics"][metric] for s in summaries if s.get("status") == "completed"
            and _matches(_cell_settings(s), where) and isinstance(s.get("metrics", {}).get(metric), (int, float))
            and not math.isnan(s["metrics"][metric])]  # fmt: skip


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
    return CellResult(where, metric, mean, std, len(values), ref, agrees, str(cell.get("citation", "")),
                      bool(cell.get("checked", True)))  # fmt: skip


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
    out = ["Side by side (measured mean / reference; ✓ agrees, ✗ does not, · not run):", "",
           "| setting | " + " | ".join(m.split("/")[-1] for m in metrics) + " |", "|---|" + "---|" * len(metrics)]  # fmt: skip
    for where, cells in table:
        entries = []
        for m in metrics:
            r = cells.get(m)
            if r is None:
                entries.append("")
                continue
            ref = r.reference.split(" ± ")[0]
            measured = "-" if r.n == 0 else f"{r.mean:.3f}"
            entries.append(f"{measured} / {ref} {({True: '✓', False: '✗', None: '·'})[r.agrees]}")
        name = ", ".join(f"{k}={v}" for k, v in where) or "all runs"
        out.append(f"| {name} | " + " | ".join(entries) + " |")
    return out


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
    lines, within, compared, worst = [], 0, 0, 0.0
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
                lines.append(f"| {part} | {name} | {g['metric']} | {old['mean']:.4f} | {g['mean']:.4f} | {diff:+.4f} |")
    if not compared:
        return ["No group of this report matches a group of the previous one.", ""]
    head = [(f"{within} of {compared} groups are within ±{tolerance} of the previous report "
            f"(written {previous.get('written_at', '?')}); the largest difference is {worst:.4f}."), ""]  # fmt: skip
    if lines:
        head += [
            "| part | group | metric | previous | now | difference |",
            "|---|---|---|---|---|---|",
            *lines,
            "",
        ]
    return head


def report_study(study: Study, outputs: Path) -> Path:
    parts = [(p, study.part_dir(outputs, p)) for p in study.parts]
    ran = [(p, d) for p, d in parts if d.exists()]
    if not ran:
        raise ValueError(
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
        f"# {study.name}: report", "",
        f"{study.spec.get('question', '').strip()}", "",
        (f"Measured by `fuselab-study run {study.name}` then `fuselab-study report {study.name}`: "
        f"{len(summaries)} runs ({failed} not completed). Cells are mean ± std (ddof=1) over the runs that match."),
    ]  # fmt: skip
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
        lines += ["| cell | metric | measured | reference | agrees |", "|---|---|---|---|---|"]
        for r in results:
            where = ", ".join(f"{k}={v}" for k, v in r.where.items()) or "all runs"
            mark = {True: "yes", False: "**no**", None: "-"}[r.agrees] + ("" if r.checked else " (reference unchecked)")
            lines.append(f"| {where} | {r.metric} | {_fmt(r)} | {r.reference} | {mark} |")
        agreed = [r.agrees for r in results if r.agrees is not None]
        tail = f"; {len(results) - len(agreed)} not run." if len(agreed) < len(results) else "."
        lines += ["", f"{sum(agreed)} of {len(agreed)} cells agree" + tail]
        if unchecked:
            lines += ["", ("*(reference unchecked)*: the reference number could not be verified against the paper "
                          "itself; the study's README says where it comes from.")]  # fmt: skip
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
        lines += [
            "",
            title,
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        tmp = outputs / "studies" / study.name / "compare" / p.name
        for w in write_outputs(comparison, tmp):
            if w.suffix == ".png":
                shutil.copy(w, plots / (f"{p.name}_{w.name}" if several else w.name))
    current["cells"] = [{"where": r.where, "metric": r.metric, "mean": _num(r.mean), "std": _num(r.std), "n": r.n,
                         "reference": r.reference, "agrees": r.agrees, "checked": r.checked} for r in results]  # fmt: skip
    current["written_at"] = _now()
    previous_path = study.root / RESULTS
    tolerance = float(study.spec.get("reproduce_tolerance", 0.02))
    if previous_path.exists():
        try:
            previous = json.loads(previous_path.read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous:
            lines += ["", "## Against the previous report", "",
                      (f"The committed `{RESULTS}` is the previous report's measured group means; a re-run is "
                      f"expected to land within ±{tolerance} of each (`reproduce_tolerance`)."), ""]  # fmt: skip
            lines += reproduction_lines(previous, current, tolerance)
    lines += ["", "## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in sorted(plots.glob("*.png"))] + [""]
    out = study.root / "report.md"
    out.write_text("\n".join(lines))
    previous_path.write_text(json.dumps(current, indent=1) + "\n")
    return out


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fuselab-study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", default="experiments", help="the folder of studies")
    parser.add_argument(
        "--outputs",
        default=os.environ.get("FUSELAB_OUTPUTS", "outputs"),
        help="where runs go",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list")
    run = sub.add_parser("run")
    run.add_argument("name")
    run.add_argument("--part", action="append", default=[], help="run only this part (repeatable)")
    run.add_argument(
        "overrides",
        nargs="*",
        help="extra fuselab-train overrides (e.g. trainer.max_epochs=5)",
    )
    rep = sub.add_parser("report")
    rep.add_argument("name")
    a = parser.parse_args(argv)
    experiments, outputs = Path(a.experiments), Path(a.outputs).resolve()
    try:
        if a.command == "list":
            for p in sorted(experiments.glob("*/study.yaml")):
                study = load_study(p.parent.name, experiments)
                first = str(study.spec.get("question", "")).strip().splitlines()[0]
                names = ", ".join(part.name for part in study.parts)
                console.print(f"{study.name}: {first} (parts: {names})", highlight=False, markup=False)
            return 0
        study = load_study(a.name, experiments)
        if a.command == "run":
            return run_study(study, outputs, a.overrides, a.part)
        path = report_study(study, outputs)
        console.print(f"wrote {path} and {path.parent / RESULTS}")
        return 0
    except (ValueError, TypeError) as exc:
        console.print(f"[bold red]fuselab-study: error:[/] {escape(str(exc))}", soft_wrap=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
