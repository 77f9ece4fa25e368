"""Seconds from the `fuselab-train` command to its first training step, against the bare cost of
importing Lightning and composing the Hydra config (what any Lightning + Hydra tool pays).

    python benchmarks/startup.py [--repeats 3]

The dataset is prepared once before timing (a cached run is what users repeat).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BARE = (
    "import os, time; import pytorch_lightning; from hydra import compose, initialize_config_module\n"
    "with initialize_config_module(config_module='fuselab.conf', version_base='1.3'):\n"
    "    compose(config_name='train')\n"
    "print('BARE_AT', time.time() - float(os.environ['FUSELAB_T0']))"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    a = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    env = {
        **os.environ,
        "FUSELAB_CACHE_DIR": str(tmp / "cache"),
        "FUSELAB_OUTPUTS": str(tmp / "out"),
        "PYTHONPATH": str(HERE),
        "WANDB_MODE": "offline",
    }
    cmd = [
        sys.executable,
        "-m",
        "fuselab.cli.train",
        "debug=fast",
        "+callbacks.probe._target_=startup_probe.FirstStepProbe",
    ]
    env["FUSELAB_T0"] = str(time.time())
    subprocess.run(cmd, env=env, check=True, capture_output=True)  # prepare the dataset once
    first, bare = [], []
    for _ in range(a.repeats):
        env["FUSELAB_T0"] = str(time.time())
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        first.append(float(next(line.split()[1] for line in out.splitlines() if line.startswith("FIRST_STEP_AT"))))
        env["FUSELAB_T0"] = str(time.time())
        out = subprocess.run([sys.executable, "-c", BARE], env=env, check=True, capture_output=True, text=True).stdout
        bare.append(float(out.split()[-1]))  # measured inside, like the probe: interpreter exit excluded
    print(f"| measure | median of {a.repeats} (s) |")
    print("|---|---|")
    print(f"| fuselab-train: command to first training step | {statistics.median(first):.2f} |")
    print(f"| bare: import pytorch_lightning + Hydra compose | {statistics.median(bare):.2f} |")


if __name__ == "__main__":
    main()
