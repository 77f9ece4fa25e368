"""``fuselab-compare DIR...``: a table (and plots) of runs grouped by the axes that vary.

Writes ``compare.md``, ``compare.csv`` and PNG plots into ``--out`` (default: the single DIR
given, else ./compare). The grouping is :mod:`fuselab.reports.compare`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from fuselab.cli.common import console, print_error
from fuselab.errors import ConfigError
from fuselab.reports.compare import compare_runs, print_table, write_outputs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fuselab-compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", help="run, sweep or study directories")
    parser.add_argument("--metric", help="primary metric (default: the test counterpart of the runs' monitor)")
    parser.add_argument("--out", help="where to write compare.md/csv and plots")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    try:
        c = compare_runs(args.dirs, args.metric)
    except ConfigError as exc:
        print_error("fuselab-compare", exc)
        return 2
    out = Path(args.out) if args.out else (Path(args.dirs[0]) if len(args.dirs) == 1 else Path("compare"))
    if out.exists() and not out.is_dir():
        print_error("fuselab-compare", f"--out {out} is a file; give a folder for compare.md, compare.csv and plots")
        return 2
    print_table(c, console)
    written = write_outputs(c, out, plots=not args.no_plots)
    console.print("wrote " + ", ".join(str(p) for p in written), soft_wrap=True, markup=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
