"""Wall time of one sweep with the basic launcher and with the joblib launcher (the joblib run
killed halfway and resumed), then a comparison of the joblib sweep.

    python benchmarks/sweep_launchers.py [--epochs 3] [--train-size 1000] [--jobs 2] [--out DIR]

Grid: fusion {early, feature, late} x rnn {rnn, lstm, gru} x modalities {[signal,tokens],
[signal,image], [signal,tokens,image]} x seed {1, 2} = 54 jobs, on the synthetic benchmark
(shortened training: the point is the launcher, not the accuracy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

GRID = [
    "fusion=early,feature,late",
    "rnn=rnn,lstm,gru",
    "data.modalities=[signal,tokens],[signal,image],[signal,tokens,image]",
    "seed=1,2",
]


def sweep_dir(outputs: Path) -> Path:
    (d,) = list((outputs / "train" / "multiruns").iterdir())
    return d


def completed(outputs: Path) -> int:
    root = outputs / "train" / "multiruns"
    if not root.exists():
        return 0
    return sum(json.loads(p.read_text()).get("status") == "completed" for p in root.glob("*/*/summary.json"))


def run(args: list[str], outputs: Path, kill_after: int | None = None) -> float:
    env = {**os.environ, "FUSELAB_OUTPUTS": str(outputs), "WANDB_MODE": "offline"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fuselab.cli.train", "-m", *args],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while proc.poll() is None:
        if kill_after is not None and completed(outputs) >= kill_after:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            break
        time.sleep(0.5)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2, help="joblib n_jobs")
    parser.add_argument("--out", default="outputs/benchmarks/sweep_launchers")
    a = parser.parse_args()
    out = Path(a.out).resolve()
    if out.exists() and any(out.iterdir()):
        sys.exit(f"{out} is not empty; pass --out to a new directory")
    common = [
        *GRID,
        f"trainer.max_epochs={a.epochs}",
        f"data.train_size={a.train_size}",
        "data.val_size=200",
        "data.test_size=200",
        "~logger",
        "callbacks.progress_bar=null",
        "trainer.enable_model_summary=false",
    ]
    n_jobs = 54
    basic = run(common, out / "basic")
    half = n_jobs // 2
    parallel = [*common, "hydra/launcher=joblib", f"hydra.launcher.n_jobs={a.jobs}"]
    first = run(parallel, out / "joblib", kill_after=half)
    done_at_kill = completed(out / "joblib")
    second = run(parallel, out / "joblib")
    total = completed(out / "joblib")
    subprocess.run(
        [sys.executable, "-m", "fuselab.cli.compare", str(sweep_dir(out / "joblib")), "--out", str(out / "compare")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"sweep: {n_jobs} jobs, {a.epochs} epochs, train_size={a.train_size}")
    print("| launcher | wall time (s) | jobs completed |")
    print("|---|---|---|")
    print(f"| basic | {basic:.1f} | {completed(out / 'basic')} |")
    print(
        f"| joblib n_jobs={a.jobs}, killed after {done_at_kill} + resumed | {first:.1f} + {second:.1f} = "
        f"{first + second:.1f} | {total} |"
    )
    print(f"comparison: {out / 'compare' / 'compare.md'}")


if __name__ == "__main__":
    main()
