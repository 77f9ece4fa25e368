"""fuselab's training throughput against a plain PyTorch loop that trains the same model on the
same batches, in one process (goal: at least 0.95 of the plain loop).

    python benchmarks/overhead.py [--fusion feature] [--rnn gru] [--batches 60] [--repeats 3]

Both sides: the model built by fuselab from the synthetic benchmark's specs, AdamW, gradient
clipping at 1.0, pre-collated batches in memory (so the loader is not measured). fuselab's side
is FusionTask in a Lightning Trainer with validation, checkpoints, loggers and progress bar off,
its per-step metric updates included.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fusion", default="feature")
    parser.add_argument("--rnn", default="gru")
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="passes over the batches (both sides)")
    a = parser.parse_args()
    os.environ.setdefault("FUSELAB_CACHE_DIR", tempfile.mkdtemp())
    import pytorch_lightning as pl
    from conftest import compose_train
    from hydra.utils import instantiate

    from fuselab.training.build import build_datamodule, build_fusion_task, describe_data

    cfg = compose_train(
        [f"fusion={a.fusion}", f"rnn={a.rnn}", "data.train_size=4000"], output_dir=Path(tempfile.mkdtemp())
    )
    dm = build_datamodule(cfg.data)
    loader = dm.train_dataloader()
    batches = [b for _, b in zip(range(a.batches), loader)]
    n_samples = a.epochs * sum(len(b["target"]) for b in batches)

    def plain() -> float:
        torch.manual_seed(0)
        task = build_fusion_task(cfg, describe_data(dm))
        model = task.model
        opt = instantiate(cfg.model.optimizer)(params=model.parameters())
        model.train()
        t0 = time.perf_counter()
        for b in batches * a.epochs:
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(b["inputs"])["logits"], b["target"])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        return n_samples / (time.perf_counter() - t0)

    def framework() -> float:
        torch.manual_seed(0)
        task = build_fusion_task(cfg, describe_data(dm))
        task.scheduler_factory = None  # the plain loop has no schedule either
        trainer = pl.Trainer(
            max_epochs=a.epochs,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            gradient_clip_val=1.0,
        )
        data = torch.utils.data.DataLoader(batches, batch_size=None, collate_fn=lambda b: b)
        t0 = time.perf_counter()
        trainer.fit(task, train_dataloaders=data)
        return n_samples / (time.perf_counter() - t0)

    plain()  # warm-up (allocator, oneDNN kernels)
    rows = []
    for _ in range(a.repeats):
        rows.append((plain(), framework()))
    best_plain = max(r[0] for r in rows)
    best_fw = max(r[1] for r in rows)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; fusion={a.fusion} rnn={a.rnn}, {len(batches)} batches of "
        f"{cfg.data.batch_size} x {a.epochs} epochs"
    )
    print("| run | plain loop (samples/s) | fuselab (samples/s) | ratio |")
    print("|---|---|---|---|")
    for i, (p, f) in enumerate(rows, 1):
        print(f"| {i} | {p:.0f} | {f:.0f} | {f / p:.3f} |")
    print(f"| best of {a.repeats} | {best_plain:.0f} | {best_fw:.0f} | {best_fw / best_plain:.3f} |")


if __name__ == "__main__":
    main()
