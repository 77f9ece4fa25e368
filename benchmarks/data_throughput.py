"""DataLoader throughput of a datamodule against what the model consumes (goal: the loader at
least 5x faster than a training step needs, so it is never the bottleneck).

    python benchmarks/data_throughput.py [data=avmnist data.data_dir=... ] [--batches 50]

Measures batches/s of ``train_dataloader()`` alone (prepared data memory-mapped, collation and
padding included) and training steps/s of the model on those batches (forward, backward, step).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. data=avmnist data.data_dir=DIR")
    a = parser.parse_args()
    os.environ.setdefault("FUSELAB_CACHE_DIR", tempfile.mkdtemp())
    from conftest import compose_train
    from hydra.utils import instantiate

    from fuselab.training.build import build_datamodule, build_fusion_task, describe_data

    cfg = compose_train(a.overrides, output_dir=Path(tempfile.mkdtemp()))
    dm = build_datamodule(cfg.data)
    dm.prepare_data()
    dm.setup()
    loader = dm.train_dataloader()
    next(iter(loader))  # first batch: opens the memory map
    t0 = time.perf_counter()
    batches = [b for _, b in zip(range(a.batches), loader)]
    load_rate = len(batches) / (time.perf_counter() - t0)

    task = build_fusion_task(cfg, describe_data(dm))
    opt = instantiate(cfg.model.optimizer)(params=task.parameters())
    task.train()
    step = lambda b: (opt.zero_grad(), task.loss(task(b["inputs"])["logits"], b["target"]).backward(), opt.step())  # noqa: E731
    step(batches[0])
    t0 = time.perf_counter()
    for b in batches:
        step(b)
    train_rate = len(batches) / (time.perf_counter() - t0)
    name = cfg.data._target_.rsplit(".", 1)[-1]
    print("| datamodule | batch size | loader (batches/s) | training (steps/s) | loader / training |")
    print("|---|---|---|---|---|")
    print(f"| {name} | {cfg.data.batch_size} | {load_rate:.1f} | {train_rate:.1f} | {load_rate / train_rate:.1f}x |")


if __name__ == "__main__":
    main()
