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
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape

from fuselab.study_report import RESULTS, report_study

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
