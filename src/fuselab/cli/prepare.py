"""``fuselab-prepare``: build data sets that need a one-time recreation from their sources.

fuselab-prepare avmnist --mnist DIR --fsdd DIR --out DIR [--seed 0] [--train-limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from fuselab.cli.common import console, print_error
from fuselab.errors import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fuselab-prepare", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="dataset", required=True)
    av = sub.add_parser("avmnist", help="AV-MNIST from MNIST idx files and FSDD wavs (MultiBench layout)")
    av.add_argument("--mnist", required=True, help="folder with the MNIST idx(.gz) files")
    av.add_argument("--fsdd", required=True, help="the Free Spoken Digit Dataset folder (with recordings/)")
    av.add_argument("--out", required=True, help="new folder to write (never overwritten)")
    av.add_argument("--seed", type=int, default=0)
    av.add_argument("--snr-db", type=float, nargs=2, default=(0.0, 20.0), metavar=("MIN", "MAX"))
    av.add_argument("--train-limit", type=int, help="only the first N MNIST train images (for quick trials)")
    av.add_argument("--test-limit", type=int, help="only the first N MNIST test images")
    args = parser.parse_args(argv)
    from fuselab.data.avmnist_build import build_avmnist

    try:
        info = build_avmnist(
            args.mnist,
            args.fsdd,
            args.out,
            seed=args.seed,
            snr_db=tuple(args.snr_db),
            train_limit=args.train_limit,
            test_limit=args.test_limit,
        )
    except ConfigError as exc:
        print_error("fuselab-prepare", exc)
        return 2
    console.print_json(json.dumps(info))
    console.print(f"train with:  fuselab-train data=avmnist data.data_dir={args.out}", soft_wrap=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
