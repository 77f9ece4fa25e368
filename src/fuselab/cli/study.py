"""``fuselab-study``: studies that reproduce a protocol and compare with reference numbers.

    fuselab-study list
    fuselab-study run NAME [--part P] [override ...]   # resumable sweeps (the same command resumes);
                                                       # PART:key=value overrides one part only
    fuselab-study report NAME                          # experiments/NAME/report.md, results.json, plots

A study is a folder ``experiments/NAME/`` (see :mod:`fuselab.reports.studies.spec` for its
``study.yaml``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from fuselab.cli.common import console, print_error
from fuselab.errors import ConfigError
from fuselab.reports.studies.report import PARTIAL, RESULTS, report_study
from fuselab.reports.studies.run import run_study
from fuselab.reports.studies.spec import load_study


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
    # overrides may come before or after --part (argparse alone takes them only before it)
    a, extra = parser.parse_known_args(argv)
    if extra and (a.command != "run" or any(x.startswith("-") for x in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        a.overrides = [*a.overrides, *extra]
    experiments, outputs = Path(a.experiments), Path(a.outputs).resolve()
    try:
        if a.command == "list":
            found = sorted(experiments.glob("*/study.yaml"))
            if not found:
                raise ConfigError(
                    f"no studies in {experiments.resolve()} (a folder of <name>/study.yaml); run "
                    "fuselab-study from a fuselab checkout, or pass --experiments <folder>"
                )
            for p in found:
                study = load_study(p.parent.name, experiments)
                first = str(study.spec.get("question", "")).strip().splitlines()[0]
                names = ", ".join(part.name for part in study.parts)
                console.print(f"{study.name}: {first} (parts: {names})", highlight=False, markup=False)
            return 0
        study = load_study(a.name, experiments)
        if a.command == "run":
            return run_study(study, outputs, a.overrides, a.part)
        path = report_study(study, outputs)
        if path.name == PARTIAL:
            console.print(
                f"wrote {path}: these runs lack numbers the previous report has (listed at its end), so "
                f"{path.parent / 'report.md'} and {path.parent / RESULTS} were kept",
                markup=False,
                soft_wrap=True,
            )
            return 1
        console.print(f"wrote {path} and {path.parent / RESULTS}", markup=False)
        return 0
    except ConfigError as exc:
        print_error("fuselab-study", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
