"""``fuselab-prepare``: build data sets that need a one-time recreation from their sources.

fuselab-prepare avmnist --mnist DIR --fsdd DIR --out DIR [--seed 0] [--train-limit N]
fuselab-prepare connected_digits --mnist DIR --fsdd DIR [--split official|speakers] [data.* settings]
fuselab-prepare moving_digits --mnist DIR --fsdd DIR [data.* settings]
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
    cd = sub.add_parser(
        "connected_digits", help="audio-visual connected digits from MNIST idx files and FSDD wavs, into the cache"
    )
    cd.add_argument("--mnist", required=True, help="folder with the MNIST idx(.gz) files")
    cd.add_argument("--fsdd", required=True, help="the Free Spoken Digit Dataset folder (with recordings/)")
    cd.add_argument("--split", default="official", help="official (FSDD takes) or speakers (held-out speakers)")
    cd.add_argument("--cache-dir", help="the dataset cache (default: FUSELAB_CACHE_DIR or ~/.cache/fuselab)")
    cd.add_argument("settings", nargs="*", help="other data settings as key=value, e.g. train_size=5000 seed=1")
    md = sub.add_parser("moving_digits", help="moving MNIST digits with FSDD speech (video + audio), into the cache")
    md.add_argument("--mnist", required=True, help="folder with the MNIST idx(.gz) files")
    md.add_argument("--fsdd", required=True, help="the Free Spoken Digit Dataset folder (with recordings/)")
    md.add_argument("--cache-dir", help="the dataset cache (default: FUSELAB_CACHE_DIR or ~/.cache/fuselab)")
    md.add_argument("settings", nargs="*", help="other data settings as key=value, e.g. train_size=5000 seed=1")
    args = parser.parse_args(argv)
    if args.dataset in ("connected_digits", "moving_digits"):
        return _cached_dataset(args)
    from fuselab.data.datasets.avmnist_build import build_avmnist

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


def _cached_dataset(args: argparse.Namespace) -> int:
    """Build connected_digits or moving_digits into the dataset cache."""
    import yaml

    if args.dataset == "connected_digits":
        from fuselab.data.datasets.connected_digits import ConnectedDigitsDataModule as Module
    else:
        from fuselab.data.datasets.moving_digits import MovingDigitsDataModule as Module
    split = {"split": args.split} if args.dataset == "connected_digits" else {}
    try:
        settings = {}
        for item in args.settings:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"{item!r} is not key=value (e.g. train_size=5000)")
            settings[key.removeprefix("data.")] = yaml.safe_load(value)
        dm = Module(args.mnist, args.fsdd, cache_dir=args.cache_dir, **split, **settings)
        dm.prepare_data()
    except (ConfigError, TypeError) as exc:
        print_error("fuselab-prepare", exc if isinstance(exc, ConfigError) else ConfigError(str(exc)))
        return 2
    marker = dm.prepared_marker()
    sizes = {s: marker.get(f"{s}_size") for s in ("train", "val", "test")}
    console.print(f"{args.dataset} ready in the cache: {dm.prepared_dir()} {sizes}", soft_wrap=True)
    extra = "".join(f" data.{k}={v}" for k, v in {**split, **settings}.items())
    cache = f" paths.cache_dir={args.cache_dir}" if args.cache_dir else ""
    console.print(
        f"train with:  fuselab-train data={args.dataset} data.mnist_dir={args.mnist} data.fsdd_dir={args.fsdd}"
        f"{extra}{cache}",
        soft_wrap=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
