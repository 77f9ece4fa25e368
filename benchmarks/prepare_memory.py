"""Peak resident memory and time of a first dataset preparation, in a child process.

    python benchmarks/prepare_memory.py --mnist ../shared/data/mnist --fsdd ../shared/data/fsdd

runs ``fuselab-prepare avmnist`` into a new temporary folder (removed afterwards) and prints
a markdown row: samples, wall time, the child's peak RSS (``ru_maxrss``: what the kernel
counted, file pages it had mapped included)."""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", required=True)
    parser.add_argument("--fsdd", required=True)
    parser.add_argument("--train-limit", type=int)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fuselab-prepare-"))
    cmd = [sys.executable, "-m", "fuselab.cli.prepare", "avmnist", "--mnist", args.mnist, "--fsdd", args.fsdd]
    cmd += ["--out", str(tmp / "avmnist")]
    if args.train_limit:
        cmd += ["--train-limit", str(args.train_limit)]
    start = time.perf_counter()
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        size = sum(p.stat().st_size for p in (tmp / "avmnist").rglob("*") if p.is_file())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("| dataset | wall (s) | peak RSS (GiB) | written (GiB) |")
    print("|---|---|---|---|")
    print(
        f"| AV-MNIST{f' (train {args.train_limit})' if args.train_limit else ''} | {wall:.0f} | "
        f"{peak_kib / 2**20:.2f} | {size / 2**30:.2f} |"
    )


if __name__ == "__main__":
    main()
